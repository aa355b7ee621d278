"""Wall time of verifying one example task: Semgrep, Bandit and pytest together vs. each alone.

    .venv/bin/python bench/verify_one.py [--example textkit] [--repeat 3]

Prepares the example's workspace, applies its scripted round-1 patch, then times each tool alone
and the three at once on threads (as the pipeline submits them), `--repeat` times each, and prints
the medians. The bound for "together" is the slowest tool alone; the ratio says how close we get.
Tools are run as plain functions (the same ones the Prefect tasks wrap), so Prefect's own overhead
is not in these figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SEMGREP_ENABLE_VERSION_CHECK", "0")

from quorum.domain.models import VerificationReport  # noqa: E402
from quorum.edits import apply_reply  # noqa: E402
from quorum.tasks.verify import python_files  # noqa: E402
from quorum.verify.bandit import run_bandit  # noqa: E402
from quorum.verify.pytest_runner import run_pytest  # noqa: E402
from quorum.verify.semgrep import run_semgrep  # noqa: E402
from quorum.workspace.workspace import prepare_workspace, remove_workspace  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="textkit", help="folder under examples/ (default: textkit)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are printed")
    args = parser.parse_args()

    example = ROOT / "examples" / args.example
    script = yaml.safe_load((example / "script.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="quorum-bench-verify-") as scratch:
        workspace = prepare_workspace(example / "repo", Path(scratch))
        path = Path(workspace.path)
        patch = apply_reply(path, script["implement"][1])
        if not patch.applied:
            print(f"the scripted patch did not apply: {patch.reason}", file=sys.stderr)
            return 1
        files = python_files(patch.files)
        tools: dict[str, Callable[[], VerificationReport]] = {
            "semgrep": lambda: run_semgrep(path, files, patch.added_lines),
            "bandit": lambda: run_bandit(path, files, patch.added_lines),
            "pytest": lambda: run_pytest(path, tool="pytest"),
        }
        for name, tool in tools.items():  # warm-up, and the verdicts must be real ones
            report = tool()
            print(f"{name:8s} verdict: {report.status.value}")

        def together() -> None:
            with ThreadPoolExecutor(max_workers=len(tools)) as pool:
                for future in [pool.submit(tool) for tool in tools.values()]:
                    future.result()

        alone = {name: statistics.median(timed(tool) for _ in range(args.repeat)) for name, tool in tools.items()}
        both = statistics.median(timed(together) for _ in range(args.repeat))
        remove_workspace(workspace)

    slowest = max(alone, key=alone.get)
    print(f"\nexample {args.example}, {os.cpu_count()} cores, median of {args.repeat}")
    for name, seconds in alone.items():
        print(f"  {name:8s} alone     {seconds:6.2f} s")
    print(f"  all three together {both:6.2f} s")
    print(f"  sum of the three   {sum(alone.values()):6.2f} s")
    print(f"  bound (slowest alone, {slowest}) / together = {alone[slowest] / both:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
