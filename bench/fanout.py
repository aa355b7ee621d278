"""Fan-out benchmark: one batch of N demo tasks in-process, fanned out per task, and fanned out in shards, over two
workers; then a fanned-out batch whose worker is killed mid-way, and its resume.

    .venv/bin/python bench/fanout.py [--tasks 20] [--parallel 4] [--modes in-process,per-task,shards] [--no-kill]

Starts a throwaway Prefect server and two process workers (tests.support.devstack), deploys the real
prefect.yaml, then runs the nightly deployment over the same manifest (the demo's three examples
repeated to N tasks), cold each time (the result cache is emptied in between):

* `in-process`: `fan_out=false`, every task a subflow inside the batch's process (`max_parallel` at once);
* `per-task`: `fan_out=true, shard_size=1`, every task a run of the shard deployment (what fan-out was:
  a flow-run process, with its Prefect and litellm imports, per task);
* `shards`: `fan_out=true`, shards sized from the batch and the two workers (two shards per worker),
  `max_parallel` tasks at once in each.

Scripted models, so the work is verification and orchestration. Prints the wall times as the server
saw them and their ratio to in-process.

Then, unless `--no-kill`: a fanned-out batch in shards on both workers; once a shard on the worker that
does not hold the batch's own run has finished some of its tasks, that worker and its runs are
SIGKILLed (as a machine dies). The batch notices
the lost shard (no heartbeat for 90 s), reports its unfinished tasks as errors and ends; the batch is
run again with the same id on the surviving worker: it keeps every finished result, runs only the killed shard's
unfinished tasks, and the two runs together make exactly the LLM calls of one clean run (none paid twice).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.devstack import REPO_ROOT, LocalPrefectStack  # noqa: E402

BATCH = "quorum-batch-from-files/nightly"
SHARD = "quorum-batch-shard/shard"
MODES = {
    "in-process": {"fan_out": False},
    "per-task": {"fan_out": True, "shard_size": 1},
    "shards": {"fan_out": True},
}


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


def report_of(store: Path, batch_id: str) -> tuple[dict, list[dict]]:
    folder = store / "runs" / batch_id
    rows = [json.loads(line) for line in (folder / "report.jsonl").read_text().splitlines() if line.strip()]
    return json.loads((folder / "report.json").read_text()), rows


def submitted_by(stack: LocalPrefectStack, worker: str) -> set[str]:
    """Runs the worker took: it logs 'submitting' for every run it tries, then 'Aborted submission' for those
    another worker had taken first."""
    text = stack.log_text(worker)
    aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text))
    return set(re.findall(r"[Ss]ubmitting flow run '([0-9a-f-]{36})'", text)) - aborted


def shard_runs(stack: LocalPrefectStack, batch_id: str) -> list[dict]:
    return [r for r in stack.flow_runs(deployment=SHARD) if r["parameters"].get("batch_id") == batch_id]


def run_batch(stack: LocalPrefectStack, params: dict, timeout_s: float = 3600) -> tuple[dict, float]:
    started = time.monotonic()
    run = stack.wait_final(stack.run_deployment(BATCH, params), timeout_s)
    return run, time.monotonic() - started


def kill_and_resume(stack: LocalPrefectStack, manifest: Path, store: Path, parallel: int, clean_calls: int | None) -> list[str]:
    """A fanned-out batch loses a worker mid-way; the batch reports the lost shard and a resume finishes it."""
    batch_id = "bench-kill"
    params = {"manifest_path": str(manifest), "batch_id": batch_id, "max_parallel": parallel, "fan_out": True}
    run_id = stack.run_deployment(BATCH, params)
    deadline = time.monotonic() + 1800
    victim, victim_ids = "", []
    while time.monotonic() < deadline and not victim_ids:
        time.sleep(1)
        holder = next((w for w in ("worker-a", "worker-b") if run_id in submitted_by(stack, w)), None)
        if holder is None:
            continue
        victim = "worker-b" if holder == "worker-a" else "worker-a"  # kill a worker that runs shards, not the batch
        on_victim = submitted_by(stack, victim)
        for shard in shard_runs(stack, batch_id):
            if shard["id"] not in on_victim:
                continue
            ids = shard["parameters"]["task_ids"]
            done = [t for t in ids if (store / "runs" / batch_id / t / "result.json").exists()]
            if done and len(done) < len(ids):
                victim_ids = ids
                break
    if not victim_ids:
        raise RuntimeError("no shard of the other worker was caught half-way (try more --tasks)")
    stack.hard_kill(victim)
    killed_at = time.monotonic()
    on_victim = submitted_by(stack, victim)  # every shard the dead worker held (it may have held two)
    victim_ids = [t for shard in shard_runs(stack, batch_id) if shard["id"] in on_victim for t in shard["parameters"]["task_ids"]]
    finished = {t for t in victim_ids if (store / "runs" / batch_id / t / "result.json").exists()}
    print(f"killed {victim} holding {len(victim_ids)} tasks in its shards, {len(finished)} of them finished", flush=True)

    first = stack.wait_final(run_id, 1800)
    noticed = time.monotonic() - killed_at
    summary1, rows1 = report_of(store, batch_id)
    errors = {r["task_id"] for r in rows1 if r["status"] == "error"}
    second, wall = run_batch(stack, params)
    summary2, rows2 = report_of(store, batch_id)
    rerun = {r["task_id"] for r in rows2 if not r["reused"]}
    fresh_total = summary1["fresh_llm_calls"] + summary2["fresh_llm_calls"]
    # calls the killed tasks had made (and Prefect had cached) before the kill, which the resume took from the cache
    cached_rerun = sum(r["cost"]["total"]["calls"] - r["cost"]["total"]["fresh_calls"] for r in rows2 if not r["reused"])
    lines = [
        f"| first run | {first['state']['type']} after the kill in {noticed:.0f} s | "
        + ", ".join(f"{k} {v}" for k, v in summary1["counts"].items() if v) + f" | {summary1['fresh_llm_calls']} |",
        f"| resume | {second['state']['type']} in {wall:.0f} s | kept {summary2['reused_results']}, ran again {len(rerun)}: "
        + ", ".join(f"{k} {v}" for k, v in summary2["counts"].items() if v) + f" | {summary2['fresh_llm_calls']} |",
    ]
    checks = {
        "the errors are the killed shard's unfinished tasks": errors == set(victim_ids) - finished,
        "the resume ran only those": rerun == set(victim_ids) - finished,
        "every task finished after the resume": not any(r["status"] == "error" for r in rows2),
        "no LLM call paid twice (fresh calls of both runs + the resume's cache hits = a clean run's calls)":
            clean_calls is None or fresh_total + cached_rerun == clean_calls,
    }
    lines.append("")
    lines += [f"- {name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()]
    lines.append(f"- fresh LLM calls, first run + resume: {fresh_total}; taken from the cache by the re-run tasks: "
                 f"{cached_rerun}" + (f" (a clean run: {clean_calls} fresh)" if clean_calls else ""))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="tasks in flight (max_parallel): in the batch, or per shard")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="skip the killed-worker resume")
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (server and worker logs, store)")
    parser.add_argument("--clean-calls", type=int, default=None,
                        help="a clean run's fresh LLM calls, for the kill check when in-process is not among --modes")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="quorum-bench-fanout-"))
    manifest = write_manifest(home, args.tasks)
    store = home / "store"
    print(f"{os.cpu_count()} cores; {args.tasks} tasks; max_parallel {args.parallel}; stack in {home}", flush=True)
    rows, kill_lines = [], []
    try:
        with LocalPrefectStack(home, extra_env={"QUORUM_STORE": str(store)}) as stack:
            stack.deploy_all()
            stack.env["PREFECT_LOGGING_LEVEL"] = "INFO"  # the workers log the runs they submit
            for name in ("worker-a", "worker-b"):
                stack.start_worker(name)
            stack.env["PREFECT_LOGGING_LEVEL"] = "WARNING"
            for mode in filter(None, args.modes.split(",")):
                shutil.rmtree(store / "cache", ignore_errors=True)  # cold: no cached LLM results (the store's cache/)
                params = {"manifest_path": str(manifest), "batch_id": f"bench-{mode}", "max_parallel": args.parallel,
                          **MODES[mode]}  # fmt: skip
                run, wall = run_batch(stack, params)
                summary, task_rows = report_of(store, f"bench-{mode}")
                rows.append((mode, run["state"]["type"], wall, seconds(run), summary))
                print(f"{mode}: {run['state']['type']} in {wall:.1f}s (server: {seconds(run):.1f}s)", flush=True)
                for row in task_rows:
                    if row.get("status") == "error":
                        print(f"  error {row.get('task_id') or row.get('id')}: {str(row.get('reason'))[:400]}", flush=True)
            if args.kill:
                shutil.rmtree(store / "cache", ignore_errors=True)
                clean = next((s["fresh_llm_calls"] for m, *_, s in rows if m == "in-process"), args.clean_calls)
                kill_lines = kill_and_resume(stack, manifest, store, args.parallel, clean)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    base = next((run_s for mode, _, _, run_s, _ in rows if mode == "in-process"), None)
    print("\n| mode | state | wall s (submit to final) | batch run s | / in-process | runs sent out | outcomes | LLM calls |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, state, wall, run_s, summary in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
        ratio = f"{run_s / base:.2f}" if base else "-"
        print(f"| {mode} | {state} | {wall:.1f} | {run_s:.1f} | {ratio} | {summary['shards']} | {outcomes} | {summary['fresh_llm_calls']} |")
    if kill_lines:
        print("\n| killed worker | state | outcomes | fresh LLM calls |")
        print("|---|---|---|---|")
        print("\n".join(kill_lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
