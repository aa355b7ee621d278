"""Batch throughput over real HTTP: many tasks' LLM stages against providers with per-provider caps.

    .venv/bin/python bench/throughput.py [--tasks 200] [--latency 0.5] [--parallel 32] [--baseline-tasks 10]
    .venv/bin/python bench/throughput.py --sizes 200,1000,5000     # one run per size, the ratios side by side
    .venv/bin/python bench/throughput.py --sizes 200,5000 --postgres   # the Prefect server on PostgreSQL

What runs (all in one command):
- a fake provider server in its own process (tests.support.fake_provider) with four "providers" of fixed
  latency and a concurrency cap each, answering 429 + Retry-After beyond it: anthropic 4,
  deepseek 8, openai 16, gemini 8 concurrent requests;
- a throwaway `prefect server start` (tests.support.devstack.LocalPrefectStack), on SQLite, or with
  `--postgres` on a throwaway PostgreSQL cluster (tests.support.postgres.LocalPostgres, Debian's postgresql);
- a sequential baseline: a plain loop calling the same stage functions (`plan_task.fn`,
  `implement_task.fn`, `review_task.fn` - the real prompt builders, parsers and quorum.llm.client path,
  no Prefect) one after another per task, on `--baseline-tasks` tasks, extrapolated to `--tasks`;
- the batch: one Prefect flow whose tasks are the real LLM stage tasks, per task plan -> implement
  -> reviews (submitted together), `--parallel` tasks in flight, provider limits from the roster
  (Prefect global concurrency limits at the fake server's caps, created by ensure_limits, which
  also reserves slots up front as an in-process batch would). Its tasks are passed by reference,
  as a batch's are: the specs are written to a store (quorum.store.batches.write_inputs) and the
  flow takes the batch id and loads them, so `--tasks 5000` runs (as a parameter, 1,000 specs
  already passed Prefect's 512 KB limit);
- the same flow again (warm): every stage from Prefect's persisted result cache.
The batch process logs at WARNING, as `quorum batch` runs by default (`--log-level INFO` for
Prefect's default, which costs this process CPU for every task run's log lines).

Verification (semgrep, bandit, pytest) is not run: it is CPU-bound local work, unrelated to
provider throughput, and would measure this 2-core machine instead of the scheduling.

Measured: the makespan of the batch's LLM work (first stage submitted to last stage done, in the
flow), the lower bound max(busiest provider's calls x latency / concurrency, one task's critical
path plan + implement + review), efficiency = bound / makespan, 429s and peak in-flight per
provider (the server's own counts), orchestration overhead per task run (wall time of a stage
task run seen by its caller minus the time its LLM requests took and waited for a provider slot),
the batch process's peak RSS and CPU time, the Prefect server's CPU per task run, and the warm
re-run's time and LLM requests. With `--sizes`, each size runs in its own process (its own server,
so its own peak RSS) without the baseline and the warm re-run, and the figures are set side by side
with their ratios to the smallest size.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._procs import group_cpu_seconds  # noqa: E402
from tests.support.devstack import LocalPrefectStack  # noqa: E402

KEY_ENV = "QUORUM_BENCH_PROVIDER_KEY"
PROVIDERS = {  # provider: (litellm model string, fake server model name, concurrency cap, stage)
    "anthropic": ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", 4, "planner"),
    "deepseek": ("deepseek/deepseek-chat", "deepseek-chat", 8, "implementer"),
    "openai": ("openai/gpt-5-mini", "gpt-5-mini", 16, "reviewer"),
    "gemini": ("gemini/gemini-2.5-flash", "gemini-2.5-flash", 8, "reviewer"),
}
EXAMPLE = ROOT / "examples" / "textkit"


# ----- the fake provider ------------------------------------------------------------------------------


def fake_config(latency: float) -> dict[str, Any]:
    script = yaml.safe_load((EXAMPLE / "script.yaml").read_text())
    replies = {
        "claude-sonnet-4-5": json.dumps(script["plan"]),
        "deepseek-chat": script["implement"][1],
        "gpt-5-mini": json.dumps(script["review"]["scripted/gpt-5-mini"][1]),
        "gemini-2.5-flash": json.dumps(script["review"]["scripted/gemini-2.5-flash"][1]),
    }
    models = {
        name: {"latency": latency, "concurrency": cap, "retry_after_s": 1.0, "reply": replies[name]}
        for _, name, cap, _ in PROVIDERS.values()
    }
    return {"seed": 0, "models": models, "default": None}


class FakeProvider:
    """The fake provider server in its own process (so its work is not on this process's GIL)."""

    def __init__(self, home: Path, latency: float):
        self.config = home / "fake-provider.yaml"
        self.config.write_text(yaml.safe_dump(fake_config(latency), sort_keys=False))
        url_file = home / "fake-provider.url"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_provider", "--config", str(self.config), "--url-file", str(url_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not url_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.05)
        self.url = url_file.read_text().strip()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, dict[str, float]]:
        return self.get("/stats")["models"]

    def log(self, model: str) -> list[tuple[float, str]]:
        return [tuple(row) for row in self.get(f"/log?model={model}")["requests"]]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/stats/reset", method="POST"), timeout=30).read()

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


# ----- the work -------------------------------------------------------------------------------------------


def roster_for(url: str):
    from quorum.domain.roster import Roster

    def at(provider: str) -> dict[str, Any]:
        return {"model": PROVIDERS[provider][0], "api_base": url, "api_key_env": KEY_ENV}

    return Roster.model_validate({
        "name": "bench-fake",
        "planner": at("anthropic"),
        "implementer": at("deepseek"),
        "reviewers": [at("openai"), at("gemini")],
        "limits": {provider: {"concurrency": cap} for provider, (_, _, cap, _) in PROVIDERS.items()},
    })  # fmt: skip


def task_specs(count: int, label: str):
    from quorum.domain.manifest import TaskSpec

    text = (EXAMPLE / "task.md").read_text()
    return [
        TaskSpec(id=f"{label}-{index:05d}", repo=str(EXAMPLE / "repo"), task=f"{text}\n\n(bench task {label} #{index})")
        for index in range(count)
    ]


def stage_inputs(store_url: str, batch_id: str, specs, roster) -> None:
    """The batch's specs into the store, as a batch writes them: the flow takes them by reference."""
    from quorum.domain.policy import Policy
    from quorum.store import open_store
    from quorum.store.batches import write_inputs

    write_inputs(open_store(store_url), batch_id, "bench", specs, roster, Policy())


def repository_files() -> str:
    """The example repository as every stage's context: its files whole, as line-numbered <file> blocks."""
    from quorum.stages.prompting import render_files
    from quorum.workspace.workspace import read_context

    return render_files(read_context(EXAMPLE / "repo"))


def repository_digest(files: str) -> str:
    """The example repository's content identity (its rendered text): the implement stage's cache key for its dry run."""
    import hashlib

    return hashlib.sha256(files.encode()).hexdigest()


# The implement stage dry-runs each reply on a clean copy of the repository, as in the pipeline: here
# the example repository itself (a dry run writes nothing).
DRY_RUN_IN = str(EXAMPLE / "repo")


def llm_seconds(calls) -> float:
    """Time spent in requests and queued for provider slots (quorum.llm.client records both per call)."""
    return sum(call.latency_s + call.wait_s for call in calls)


def sequential_task(spec, roster, files) -> int:
    """One task's stages one after another, as plain functions: no Prefect, no provider limits."""
    from quorum.tasks.implement import implement_task
    from quorum.tasks.plan import plan_task
    from quorum.tasks.review import review_task

    planned = plan_task.fn(spec, roster.planner, files)
    implemented = implement_task.fn(spec, roster.implementer, files, planned.plan, 1, [], [],
                                    repo_digest=repository_digest(files), workspace=DRY_RUN_IN)  # fmt: skip
    reviews = [review_task.fn(spec, r, files, planned.plan, implemented.diff, "(no verification reports)", 1)
               for r in roster.reviewers]  # fmt: skip
    return len(planned.calls) + len(implemented.calls) + sum(len(r.calls) for r in reviews)


def call_figures(calls) -> list[tuple[str, float, float, int]]:
    """What the figures need of each call (provider, latency, started_at, retries, wait): not its prompt and reply,
    so the bench's own bookkeeping does not inflate the batch process's memory."""
    return [(call.provider, call.latency_s, call.started_at, call.retries, call.wait_s) for call in calls]


def make_batch_flow(parallel: int):
    from prefect import flow

    from quorum.store import open_store
    from quorum.store.batches import read_inputs, read_specs
    from quorum.tasks.implement import implement_task
    from quorum.tasks.limits import ensure_limits_task
    from quorum.tasks.plan import plan_task
    from quorum.tasks.review import review_task

    def one_task(spec, roster, files) -> dict[str, Any]:
        rows = []  # (stage, caller-side wall seconds, LLM seconds, figures of its calls)
        started = time.monotonic()
        planned = plan_task(spec, roster.planner, files)
        after_plan = time.monotonic()
        rows.append(("plan", after_plan - started, llm_seconds(planned.calls), call_figures(planned.calls)))
        implemented = implement_task(spec, roster.implementer, files, planned.plan, 1, [], [],
                                     repo_digest=repository_digest(files), workspace=DRY_RUN_IN)  # fmt: skip
        after_implement = time.monotonic()
        rows.append(("implement", after_implement - after_plan, llm_seconds(implemented.calls), call_figures(implemented.calls)))
        done_at: dict[int, float] = {}
        futures = []
        for index, reviewer in enumerate(roster.reviewers):
            future = review_task.submit(spec, reviewer, files, planned.plan, implemented.diff,
                                        "(no verification reports)", 1)  # fmt: skip
            future.add_done_callback(lambda _, index=index: done_at.setdefault(index, time.monotonic()))
            futures.append(future)
        reviews = [future.result() for future in futures]
        finished = time.monotonic()
        for index, review in enumerate(reviews):
            rows.append(("review", done_at.get(index, finished) - after_implement, llm_seconds(review.calls), call_figures(review.calls)))
        marks = {"started": started, "planned": after_plan, "implemented": after_implement, "finished": finished}
        return {"started": started, "finished": finished, "stages": rows, "marks": marks}

    @flow(name="quorum-throughput-bench", log_prints=False)
    def llm_batch(store_url: str, batch_id: str) -> dict[str, Any]:
        flow_started = time.monotonic()
        store = open_store(store_url)
        inputs = read_inputs(store, batch_id)
        specs, roster, files = read_specs(store, inputs), inputs.roster, repository_files()
        ensure_limits_task(roster, reserve=parallel)  # create the limits; lease slots while the server is quiet
        work_started = time.monotonic()
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="bench-task") as pool:
            futures = [pool.submit(contextvars.copy_context().run, one_task, spec, roster, files) for spec in specs]
            tasks = [future.result() for future in futures]
        return {"flow_started": flow_started, "work_started": work_started, "work_finished": time.monotonic(),
                "tasks": tasks}  # fmt: skip

    return llm_batch


# ----- reporting ---------------------------------------------------------------------------------------


def summarise(run: dict[str, Any], run_started_wall: float) -> dict[str, Any]:
    stages = [row for task in run["tasks"] for row in task["stages"]]
    overheads = [(wall - llm) * 1000 for _, wall, llm, _ in stages]
    calls = [call for *_, stage_calls in stages for call in stage_calls]  # (provider, latency, started_at, retries, wait)
    fresh = [call for call in calls if call[2] >= run_started_wall]
    return {
        "makespan": run["work_finished"] - run["work_started"],
        "startup": run["work_started"] - run["flow_started"],
        "task_runs": len(stages),
        "overhead_ms_mean": statistics.fmean(overheads),
        "overhead_ms_median": statistics.median(overheads),
        "overhead_ms_p95": sorted(overheads)[int(0.95 * (len(overheads) - 1))],
        "fresh_calls": len(fresh),
        "retries": sum(call[3] for call in calls),
        "slot_wait_s": sum(call[4] for call in fresh),
    }


def bottleneck_utilisation(log: list[tuple[float, str]], latency: float, cap: int) -> tuple[float, float]:
    """Share of the cap busy between the provider's first request and its last reply; and that window."""
    arrivals = [t for t, outcome in log if outcome == "ok"]
    window = max(arrivals) + latency - min(arrivals)
    return len(arrivals) * latency / (cap * window), window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per request at every provider")
    parser.add_argument("--parallel", type=int, default=32, help="tasks in flight in the batch flow")
    parser.add_argument("--baseline-tasks", type=int, default=10, help="tasks the sequential baseline runs")
    parser.add_argument("--log-level", default="WARNING",
                        help="PREFECT_LOGGING_LEVEL of the batch process (WARNING: what `quorum batch` sets)")
    parser.add_argument("--trace", type=Path, help="write each task's stage times (monotonic clock) to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs, database, results)")
    parser.add_argument("--slots", choices=("pool", "prefect"), default="pool",
                        help="how requests hold provider slots (QUORUM_PROVIDER_SLOTS): the pool, or prefect's "
                             "concurrency() per request")
    parser.add_argument("--no-warm", dest="warm", action="store_false", help="skip the warm re-run")
    parser.add_argument("--json", type=Path, help="also write the main figures to this JSON file")
    parser.add_argument("--sizes", help="comma-separated task counts (e.g. 200,1000,5000): one run each, side by side")
    parser.add_argument("--database-url", help="the Prefect server's database (e.g. postgresql+asyncpg://...); "
                                               "default: a throwaway SQLite file")
    parser.add_argument("--postgres", action="store_true",
                        help="back the Prefect server with a throwaway PostgreSQL cluster (Debian's postgresql; "
                             "tests/support/postgres.py), one per run")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="the batch process's sys.setswitchinterval in seconds (Python's default: 0.005)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.sizes:
        return sweep(args)
    if args.postgres:
        from tests.support.postgres import LocalPostgres

        with LocalPostgres() as postgres:
            args.database_url = postgres.url
            return measure(args)
    return measure(args)


def measure(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="quorum-bench-throughput-"))
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}", flush=True)
    print(f"setup: {args.tasks} tasks x (plan + implement + 2 reviews), latency {args.latency}s, caps "
          + ", ".join(f"{p} {cap}" for p, (_, _, cap, _) in PROVIDERS.items())
          + f"; {args.parallel} tasks in flight; provider slots: {args.slots}; switch interval "
          + f"{sys.getswitchinterval() * 1000:g} ms; work dir {home}", flush=True)  # fmt: skip
    print(f"Prefect server database: {'PostgreSQL' if args.database_url else 'SQLite'}", flush=True)
    fake = FakeProvider(home, args.latency)
    database = {"PREFECT_API_DATABASE_CONNECTION_URL": args.database_url} if args.database_url else None
    stack = LocalPrefectStack(home, extra_env=database)
    stack.__enter__()
    try:
        for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_RESULTS_LOCAL_STORAGE_PATH",
                     "PREFECT_SERVER_ANALYTICS_ENABLED", "LITELLM_LOCAL_MODEL_COST_MAP"):  # fmt: skip
            os.environ[name] = stack.env[name]
        os.environ["PREFECT_LOGGING_LEVEL"] = args.log_level
        os.environ["QUORUM_PROVIDER_SLOTS"] = args.slots
        os.environ[KEY_ENV] = "bench-key-not-secret-00000"
        return run(args, fake, stack)
    finally:
        _drain_events()  # before the server goes: a client still sending events would retry for minutes
        stack.stop()
        fake.stop()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def _drain_events() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60)


def run(args: argparse.Namespace, fake: FakeProvider, stack: LocalPrefectStack) -> int:
    from quorum.llm.client import get_litellm
    from quorum.prefect_api.provider_slots import pool_stats, server_stats

    get_litellm()
    roster = roster_for(fake.url)
    files = repository_files()
    latency = args.latency

    # 1. Sequential baseline, no orchestration (after one untimed task: litellm loads each provider's
    #    client on its first call).
    sequential_task(task_specs(1, "warm-up")[0], roster, files)
    baseline = baseline_per_task = 0.0
    if args.baseline_tasks:
        baseline_specs = task_specs(args.baseline_tasks, "baseline")
        started = time.monotonic()
        baseline_calls = sum(sequential_task(spec, roster, files) for spec in baseline_specs)
        baseline = time.monotonic() - started
        baseline_per_task = baseline / args.baseline_tasks
        print(f"baseline: {args.baseline_tasks} tasks one after another in {baseline:.1f}s "
              f"({baseline_per_task:.2f}s per task, {baseline_calls} requests)", flush=True)  # fmt: skip

    # 2. The batch, cold: its specs go to a store, the flow takes them by reference.
    llm_batch = make_batch_flow(args.parallel)
    store_url = str(stack.home / "bench-store")
    stage_inputs(store_url, "bench", task_specs(args.tasks, "batch"), roster)
    fake.reset()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    prefect_cpu_before, fake_cpu_before = group_cpu_seconds(stack.processes["server"].pid), fake.cpu_seconds()
    cold_wall = time.time()
    started = time.monotonic()
    cold_run = llm_batch(store_url, "bench")
    cold_total = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    prefect_cpu = group_cpu_seconds(stack.processes["server"].pid) - prefect_cpu_before
    fake_cpu = fake.cpu_seconds() - fake_cpu_before
    cold = summarise(cold_run, cold_wall)
    if args.trace:
        args.trace.write_text(json.dumps({
            "work_started": cold_run["work_started"], "work_finished": cold_run["work_finished"],
            "tasks": [task["marks"] for task in cold_run["tasks"]],
            "arrivals": {name: fake.log(name) for _, name, _, _ in PROVIDERS.values()},
        }))  # fmt: skip
    served = fake.stats()
    logs = {name: fake.log(name) for _, name, _, _ in PROVIDERS.values()}
    pools = pool_stats()
    slot_server = next(iter(server_stats().values()), {})
    print(f"batch (cold): LLM work {cold['makespan']:.2f}s, flow {cold_total:.2f}s", flush=True)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the cold run's peak

    # 3. The batch again, warm: every stage from the persisted cache.
    warm_requests, warm_total, warm = 0, 0.0, {}
    if args.warm:
        fake.reset()
        warm_wall = time.time()
        started = time.monotonic()
        warm_run = llm_batch(store_url, "bench")
        warm_total = time.monotonic() - started
        warm = summarise(warm_run, warm_wall)
        warm_requests = int(sum(model.get("requests", 0) for model in fake.stats().values()))

    # 4. Figures.
    rows = []
    for provider, (_, name, cap, stage) in PROVIDERS.items():
        counts = served.get(name, {})
        work = counts.get("requests", 0) * latency / cap
        utilisation, window = bottleneck_utilisation(logs[name], latency, cap)
        rows.append((provider, stage, cap, int(counts.get("requests", 0)), int(counts.get("rate_limited", 0)),
                     int(counts.get("max_in_flight", 0)), work, utilisation, window))  # fmt: skip
    busiest = max(rows, key=lambda row: row[6])
    critical_path = 3 * latency  # plan, implement, then the reviews in parallel
    bound = max(busiest[6], critical_path)
    efficiency = bound / cold["makespan"]
    sequential = baseline_per_task * args.tasks
    batch_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    busiest_log = [t for t, outcome in logs[PROVIDERS[busiest[0]][1]] if outcome == "ok"]
    busiest_calls = sorted(call[1] for task in cold_run["tasks"] for *_, calls in task["stages"]
                           for call in calls if call[0] == busiest[0])  # fmt: skip
    held = (statistics.fmean(busiest_calls), busiest_calls[int(0.95 * (len(busiest_calls) - 1))])
    head = min(busiest_log) - cold_run["work_started"]  # both on the machine's monotonic clock
    tail = cold_run["work_finished"] - (max(busiest_log) + latency)

    print()
    print("| provider | stage | cap | requests | 429s | peak in flight | calls x latency / cap (s) | busy share of its window |")
    print("|---|---|---|---|---|---|---|---|")
    for provider, stage, cap, requests, limited, peak, work, utilisation, _ in rows:
        print(f"| {provider} | {stage} | {cap} | {requests} | {limited} | {peak} | {work:.2f} | {utilisation:.3f} |")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| cores | {os.cpu_count()} |")
    print(f"| tasks, stage task runs | {args.tasks}, {cold['task_runs']} |")
    print(f"| lower bound: busiest provider ({busiest[0]}) calls x latency / cap | {busiest[6]:.2f} s |")
    print(f"| lower bound: one task's critical path (plan + implement + review) | {critical_path:.2f} s |")
    print(f"| makespan of the LLM work (first stage submitted to last stage done) | {cold['makespan']:.2f} s |")
    print(f"| **efficiency = bound / makespan** | **{efficiency:.3f}** |")
    print(f"| whole flow run incl. start-up and ensure_limits (cold); bound / that | {cold_total:.2f} s "
          f"(start-up {cold['startup']:.2f} s); {bound / cold_total:.3f} |")  # fmt: skip
    if args.baseline_tasks:
        print(f"| sequential baseline ({args.baseline_tasks} tasks measured, x{args.tasks / args.baseline_tasks:g}) | "
              f"{baseline:.1f} s -> {sequential:.0f} s for {args.tasks} |")  # fmt: skip
        print(f"| **speed-up over sequential** (extrapolated baseline / makespan) | **{sequential / cold['makespan']:.1f}x** |")
    print(f"| 429s answered during the batch | {sum(row[4] for row in rows)} |")
    print(f"| requests retried (all causes) | {cold['retries']} |")
    print(f"| orchestration overhead per task run: mean / median / p95 | {cold['overhead_ms_mean']:.0f} / "
          f"{cold['overhead_ms_median']:.0f} / {cold['overhead_ms_p95']:.0f} ms |")  # fmt: skip
    print(f"| time queued for provider slots (sum over calls) | {cold['slot_wait_s']:.1f} s |")
    print(f"| batch process CPU (user + sys) during the cold run | {batch_cpu:.1f} s ({batch_cpu / cold_total:.2f} of one core) |")
    print(f"| Prefect server CPU / fake provider CPU during the cold run | {prefect_cpu:.1f} s / {fake_cpu:.1f} s |")
    print(f"| Prefect server CPU per task run / batch process CPU per task run | {prefect_cpu / cold['task_runs'] * 1000:.1f} ms / "
          f"{batch_cpu / cold['task_runs'] * 1000:.1f} ms |")  # fmt: skip
    print(f"| busiest provider busy share between its first request and last reply | {busiest[7]:.3f} |")
    print(f"| its request as quorum timed it (litellm call, slot held): mean / p95 | {held[0] * 1000:.0f} / "
          f"{held[1] * 1000:.0f} ms (the provider: {latency * 1000:.0f} ms) |")  # fmt: skip
    print(f"| makespan = head + busiest provider's window + tail | {head:.2f} + {busiest[8]:.2f} + {tail:.2f} s |")
    print(f"| peak RSS of the batch process (cold run) | {peak_rss_mb:.0f} MB |")
    if args.warm:
        print(f"| warm re-run: flow time (start-up) / LLM work / requests to providers / fresh calls | {warm_total:.2f} s "
              f"({warm['startup']:.2f} s) / {warm['makespan']:.2f} s / {warm_requests} / {warm['fresh_calls']} |")  # fmt: skip
    print("| provider slot pool: " + "; ".join(
        f"{p} {s['requests']} requests, {s['slots_leased']} slots in {s['leased']} leases, {s['denied']} denied, {s['returned']} returned" for p, s in sorted(pools.items()))
        + " |")  # fmt: skip
    print(f"| requests to the Prefect server for slots: count / busy answers retried / total s / slowest s | "
          f"{slot_server.get('requests')} / {slot_server.get('busy')} / {slot_server.get('seconds')} / "
          f"{slot_server.get('slowest')} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "tasks": args.tasks, "task_runs": cold["task_runs"], "bound_s": bound, "makespan_s": cold["makespan"],
            "efficiency": efficiency, "overhead_ms_mean": cold["overhead_ms_mean"],
            "overhead_ms_median": cold["overhead_ms_median"], "overhead_ms_p95": cold["overhead_ms_p95"],
            "peak_rss_mb": peak_rss_mb, "server_cpu_s": prefect_cpu, "batch_cpu_s": batch_cpu,
            "server_cpu_ms_per_task_run": prefect_cpu / cold["task_runs"] * 1000,
            "held_ms_mean": held[0] * 1000, "busy_share": busiest[7], "rate_limited": sum(row[4] for row in rows),
        }))  # fmt: skip
    return 0 if warm_requests == 0 else 1


def sweep(args: argparse.Namespace) -> int:
    """One run per size, each in its own process (its own server and peak RSS), the ratios side by side."""
    sizes = [int(size) for size in args.sizes.split(",")]
    figures = []
    with tempfile.TemporaryDirectory(prefix="quorum-bench-sizes-") as tmp:
        for size in sizes:
            out = Path(tmp) / f"{size}.json"
            command = [sys.executable, __file__, "--tasks", str(size), "--latency", str(args.latency),
                       "--parallel", str(args.parallel), "--baseline-tasks", "0", "--no-warm", "--json", str(out),
                       "--slots", args.slots, "--log-level", args.log_level]  # fmt: skip
            if args.switch_interval:
                command += ["--switch-interval", str(args.switch_interval)]
            if args.database_url:
                command += ["--database-url", args.database_url]
            if args.postgres:
                command += ["--postgres"]
            print(f"--- {size} tasks: {' '.join(command[1:])}", flush=True)
            subprocess.run(command, check=True)
            figures.append(json.loads(out.read_text()))
    first = figures[0]
    print()
    print("| figure | " + " | ".join(f"{f['tasks']} tasks" for f in figures) + " | ratio " + " / ".join(
        f"{f['tasks']}:{first['tasks']}" for f in figures[1:]) + " |")  # fmt: skip
    print("|---|" + "---|" * (len(figures) + 1))
    for label, key, fmt in (
        ("efficiency (bound / makespan)", "efficiency", "{:.3f}"),
        ("bound / makespan (s)", None, None),
        ("orchestration overhead per task run, mean (ms)", "overhead_ms_mean", "{:.0f}"),
        ("orchestration overhead per task run, median (ms)", "overhead_ms_median", "{:.0f}"),
        ("peak RSS of the batch process (MB)", "peak_rss_mb", "{:.0f}"),
        ("Prefect server CPU per task run (ms)", "server_cpu_ms_per_task_run", "{:.1f}"),
        ("planner request as timed, slot held (ms)", "held_ms_mean", "{:.0f}"),
        ("429s", "rate_limited", "{:d}"),
    ):
        if key is None:
            cells = [f"{f['bound_s']:.1f} / {f['makespan_s']:.1f}" for f in figures]
            print(f"| {label} | " + " | ".join(cells) + " | |")
            continue
        cells = [fmt.format(f[key]) for f in figures]
        ratios = " / ".join(f"{f[key] / first[key]:.2f}" if first[key] else "-" for f in figures[1:])
        print(f"| {label} | " + " | ".join(cells) + f" | {ratios} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
