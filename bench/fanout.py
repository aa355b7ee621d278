"""Fan-out benchmark: one batch of N demo tasks, in-process on one worker vs fanned out over two.

    .venv/bin/python bench/fanout.py [--tasks 20] [--parallel 4]

Starts a throwaway Prefect server and two process workers (tests.support.devstack), deploys the real
prefect.yaml, then runs the nightly deployment twice over the same manifest (the demo's three
examples repeated to N tasks), cold each time (the result cache is emptied in between):
`fan_out=false` (every task a subflow inside the batch's process) and `fan_out=true` (every task
a run of quorum-task-request/on-request, picked up by either worker). Prints wall times of the
batch runs as the server saw them; scripted models, so the work is verification and orchestration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.devstack import REPO_ROOT, LocalPrefectStack  # noqa: E402

EXAMPLES = ("textkit-slugify", "filestats-count-lines", "userdir-permission-cache")


def write_manifest(directory: Path, count: int) -> Path:
    demo = yaml.safe_load((REPO_ROOT / "examples" / "demo.yaml").read_text())
    base = REPO_ROOT / "examples"
    tasks = []
    for index in range(count):
        entry = dict(demo["tasks"][index % len(demo["tasks"])])
        entry["id"] = f"{entry['id']}-{index:02d}"
        for key in ("repo", "task_file", "acceptance", "script"):
            entry[key] = str((base / entry[key]).resolve())
        tasks.append(entry)
    path = directory / "bench-manifest.yaml"
    path.write_text(yaml.safe_dump({"batch": "bench", "roster": "scripted", "tasks": tasks}, sort_keys=False))
    return path


def seconds(run: dict) -> float:
    start = datetime.fromisoformat(run["start_time"])
    end = datetime.fromisoformat(run["end_time"])
    return (end - start).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="tasks in flight (max_parallel) in both modes")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="quorum-bench-fanout-"))
    manifest = write_manifest(home, args.tasks)
    print(f"{os.cpu_count()} cores; {args.tasks} tasks; max_parallel {args.parallel}; stack in {home}", flush=True)
    rows = []
    try:
        with LocalPrefectStack(home, extra_env={"QUORUM_STORE": str(home / "store")}) as stack:
            stack.deploy_all()
            for name in ("worker-a", "worker-b"):
                stack.start_worker(name)
            for mode, fan_out in (("in-process", False), ("fan-out", True)):
                shutil.rmtree(home / "results", ignore_errors=True)  # cold: no cached LLM results
                params = {
                    "manifest_path": str(manifest), "batch_id": f"bench-{mode}",
                    "max_parallel": args.parallel, "fan_out": fan_out,
                }  # fmt: skip
                started = time.monotonic()
                run = stack.wait_final(stack.run_deployment("quorum-batch-from-files/nightly", params), 3600)
                wall = time.monotonic() - started
                report = yaml.safe_load((home / "store" / "runs" / f"bench-{mode}" / "report.json").read_text())
                rows.append((mode, run["state"]["type"], wall, seconds(run), report["counts"], report["fresh_llm_calls"]))
                print(f"{mode}: {run['state']['type']} in {wall:.1f}s (server: {seconds(run):.1f}s)", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print("\n| mode | state | wall s (submit to final) | batch run s | outcomes | LLM calls |")
    print("|---|---|---|---|---|---|")
    for mode, state, wall, run_s, counts, calls in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        print(f"| {mode} | {state} | {wall:.1f} | {run_s:.1f} | {outcomes} | {calls} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
