"""A big manifest end to end: N tasks over R repositories with K-byte task texts, through `quorum batch` and
through the nightly deployment, with a batch budget that runs out after the first calls.

    .venv/bin/python bench/big_batch.py [--tasks 3000] [--repos 30] [--text-bytes 2048] [--budget 0.05]

Starts a throwaway Prefect server (tests.support.devstack, SQLite) and, for the deployment run, one
process worker; makes R git repositories (copies of the textkit example, so the scripted patches
apply) and a manifest of N tasks spread over them, each with its own task text. Then

1. `quorum batch MANIFEST --roster scripted --batch-budget B` in its own process: the first tasks
   plan (and some implement) until the budget is spent; every other task is skipped before it costs
   a subflow run or a workspace;
2. the nightly deployment (`quorum-batch-from-files/nightly`) on the same manifest and budget, run
   by the worker;
3. `quorum batch` again with the same batch id: a resume over N finished-or-skipped results.

Checks that each report lists all N tasks (report.jsonl rows, in manifest order) and prints the wall
time, the Prefect server's CPU, the subflow runs created and the batch process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._procs import group_cpu_seconds  # noqa: E402
from tests.support.devstack import LocalPrefectStack  # noqa: E402

EXAMPLE = ROOT / "examples" / "textkit"
FILLER = (
    "Keep the public API unchanged, document the new behaviour in the module docstring, and add tests "
    "for empty input, unicode, repeated separators and very long text. "
)


def make_repos(home: Path, count: int) -> list[Path]:
    repos = []
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for n in range(count):
        repo = home / "repos" / f"repo-{n:02d}"
        shutil.copytree(EXAMPLE / "repo", repo)
        subprocess.run([*git, "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
        subprocess.run([*git, "-C", str(repo), "commit", "-qm", "initial"], check=True)
        repos.append(repo)
    return repos


def write_manifest(path: Path, tasks: int, repos: list[Path], text_bytes: int) -> Path:
    entries = []
    for n in range(tasks):
        text = f"Task {n}: add slugify(text) to textkit. " + FILLER * (text_bytes // len(FILLER) + 1)
        entries.append({
            "id": f"big-{n:05d}", "repo": str(repos[n % len(repos)]), "task": text[:text_bytes],
            "script": str(EXAMPLE / "script.yaml"), "acceptance": str(EXAMPLE / "acceptance"),
        })  # fmt: skip
    path.write_text(yaml.safe_dump({"batch": "big", "tasks": entries}, sort_keys=False))
    return path


def rows_of(store: Path, batch: str) -> list[dict]:
    text = (store / "runs" / batch / "report.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check(store: Path, batch: str, ids: list[str]) -> dict:
    summary = json.loads((store / "runs" / batch / "report.json").read_text())
    rows = rows_of(store, batch)
    assert [row["task_id"] for row in rows] == ids, "the report must list every task, in manifest order"
    assert summary["tasks"] == len(ids)
    return summary


def subflow_runs(stack: LocalPrefectStack, prefix: str) -> int:
    body = {"flows": {"name": {"any_": ["quorum-task"]}}, "flow_runs": {"name": {"like_": prefix}}, "limit": 200}
    return len(stack.api("POST", "/flow_runs/filter", body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--repos", type=int, default=30)
    parser.add_argument("--text-bytes", type=int, default=2048)
    parser.add_argument("--budget", type=float, default=0.05, help="batch budget in USD (scripted models priced as real)")
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="quorum-bench-big-"))
    repos = make_repos(home, args.repos)
    manifest = write_manifest(home / "big.yaml", args.tasks, repos, args.text_bytes)
    ids = [f"big-{n:05d}" for n in range(args.tasks)]
    store = home / "store"
    print(f"{os.cpu_count()} cores; {args.tasks} tasks over {args.repos} repositories, {args.text_bytes}-byte texts; "
          f"manifest {manifest.stat().st_size / 1e6:.1f} MB; budget ${args.budget}; work dir {home}", flush=True)  # fmt: skip
    rows = []
    try:
        LocalPrefectStack.startup_timeout_s = 900.0  # a busy machine starts the server slowly
        with LocalPrefectStack(home, extra_env={"QUORUM_STORE": str(store)}) as stack:
            server = stack.processes["server"].pid
            env = {**stack.env, "PREFECT_LOGGING_LEVEL": "WARNING"}

            def cli(batch_id: str) -> tuple[float, float, int, str]:
                cpu = group_cpu_seconds(server)
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-c", "import resource, sys\nfrom quorum.cli.main import main\ncode = main(sys.argv[1:])\n"
                     "print(f'peak-rss-mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}')\nraise SystemExit(code)",
                     "batch", str(manifest), "--roster", "scripted", "--store", str(store), "--batch-id", batch_id,
                     "--batch-budget", str(args.budget), "--parallel", str(args.parallel)],
                    cwd=home, env=env, capture_output=True, text=True, timeout=7200,
                )  # fmt: skip
                wall = time.monotonic() - started
                if done.returncode not in (0, 1):
                    raise RuntimeError(f"quorum batch exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                rss = next(int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("peak-rss-mb"))
                return wall, group_cpu_seconds(server) - cpu, rss, done.stdout

            wall, cpu, rss, _ = cli("big-cli")
            summary = check(store, "big-cli", ids)
            rows.append(("`quorum batch`", wall, cpu, summary, subflow_runs(stack, "big-%"), f"{rss} MB"))
            print(f"cli: {wall:.1f}s, {summary['counts']}", flush=True)

            stack.deploy_all()
            stack.start_worker("worker-a")
            cpu_before = group_cpu_seconds(server)
            started = time.monotonic()
            run_id = stack.run_deployment("quorum-batch-from-files/nightly", {
                "manifest_path": str(manifest), "roster": "scripted", "batch_id": "big-nightly",
                "batch_budget_usd": args.budget, "max_parallel": args.parallel,
            })  # fmt: skip
            run = stack.wait_final(run_id, timeout_s=7200)
            wall = time.monotonic() - started
            assert run["state"]["type"] == "COMPLETED", run["state"]
            summary = check(store, "big-nightly", ids)
            size = len(json.dumps(stack.flow_run(run_id)["parameters"]))
            rows.append(("nightly deployment", wall, group_cpu_seconds(server) - cpu_before, summary, None, f"params {size} B"))
            print(f"nightly: {wall:.1f}s, {summary['counts']}", flush=True)

            wall, cpu, rss, _ = cli("big-cli")  # resume: every result read back from the store
            summary = check(store, "big-cli", ids)
            rows.append(("`quorum batch` again (resume)", wall, cpu, summary, None, f"{rss} MB"))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print("\n| run | wall s | Prefect server CPU s | outcomes | LLM calls | subflow runs (all runs so far) | note |")
    print("|---|---|---|---|---|---|---|")
    for name, wall, cpu, summary, subflows, note in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
        calls = f"{summary['fresh_llm_calls']} new, {summary['cached_llm_calls']} cached"
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {outcomes} | {calls} | {subflows if subflows is not None else '-'} | {note} |")
    print(f"\nthis process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
