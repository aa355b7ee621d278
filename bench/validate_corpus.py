"""`quorum validate` over the real-repository corpus, cold then warm, in one run.

    .venv/bin/python bench/validate_corpus.py [--corpus /work/corpus] [--parallel 2] [--only ID,ID] [--work DIR]

Reads the laid-out corpus at run time (``<corpus>/instances.jsonl`` with a ``snapshot`` per instance,
see ../shared/corpus/README.md) and writes nothing of it into the project: the manifest, the
environment cache and the store live in a temporary directory that is removed at the end.

Pass 1 (cold): an empty environment cache and an empty uv download cache, so every environment is
built. Pass 2 (warm): the same manifest again, a new batch id; every environment must be reused.
Prints the table (instance, env build s cold / warm, baseline failing, F2P, P2P, outcome) and the
ratio of environment time warm / cold (the issue's bound: <= 10 %).

The one manifest-level addition (what the repositories' own files do not say) is decided from the
snapshot at run time: a requests base whose requirements-dev.txt bounds Flask below 2 (``Flask<2``,
``Flask>=1.0,<2.0``: httpbin 0.7) but not MarkupSafe gets ``python_deps: ["MarkupSafe<2.1"]`` (MarkupSafe 2.1 removed ``soft_unicode``,
which Jinja2 2.x imports; requests itself added exactly this pin in 2022-03).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def needs_markupsafe_pin(snapshot: Path) -> bool:
    req = snapshot / "requirements-dev.txt"
    if not req.is_file():
        return False
    text = req.read_text(errors="replace").lower()
    # "Flask<2", "Flask>=1.0,<2.0", "flask>1.0,<2.0": any Flask requirement with an upper bound below 2
    return bool(re.search(r"^flask\b[^#\n]*<\s*2(?:\.0)*\s*(?:,|#|$)", text, re.M)) and "markupsafe" not in text


def instances_file(corpus: Path, out: Path, only: set[str] | None = None) -> int:
    """The corpus's instances (``only`` those, when given) with absolute snapshots and the run-time
    additions; returns the count."""
    n = 0
    with (corpus / "instances.jsonl").open() as src, out.open("w") as dst:
        for line in src:
            if not line.strip():
                continue
            inst = json.loads(line)
            if only and inst["instance_id"] not in only:
                continue
            snapshot = corpus / inst["snapshot"]
            inst["snapshot"] = str(snapshot)
            if needs_markupsafe_pin(snapshot):
                inst["python_deps"] = ["MarkupSafe<2.1"]
            dst.write(json.dumps(inst) + "\n")
            n += 1
    return n


def validate(manifest: Path, store: Path, batch_id: str, parallel: int, env: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(HERE / ".venv" / "bin" / "quorum"), "validate", str(manifest), "--store", str(store),
         "--batch-id", batch_id, "--parallel", str(parallel)],
        env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    (store / f"{batch_id}.log").write_text(done.stdout)
    print(done.stdout[-3000:], flush=True)
    return done.returncode, wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated instance ids (default: every instance)")
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    work = Path(args.work or tempfile.mkdtemp(prefix="quorum-bench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        only = {i for i in args.only.split(",") if i} or None
        count = instances_file(corpus, work / "instances.jsonl", only)
        if only and count != len(only):
            print(f"--only names {len(only)} instance(s), the corpus has {count} of them", file=sys.stderr)
            return 2
        manifest = work / "corpus.yaml"
        manifest.write_text("batch: corpus\ninstances: instances.jsonl\n")
        store, cache = work / "store", work / "envs"
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "QUORUM_ENV_CACHE": str(cache), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        print(f"{count} instances; environment cache {cache} (empty: cold)", flush=True)
        cold_rc, cold_wall = validate(manifest, store, "cold", args.parallel, env)
        warm_rc, warm_wall = validate(manifest, store, "warm", args.parallel, env)
        rows = {name: {r["task_id"]: r for r in json.loads((store / "runs" / name / "validation.json").read_text())}
                for name in ("cold", "warm")}  # fmt: skip
        print("\n| instance | env build s cold | env s warm | env (cold / warm) | baseline failing (suite) | "
              "F2P fail before | F2P pass after | P2P failing before / after | outcome cold / warm |")
        print("|---|---:|---:|---|---:|---:|---:|---|---|")
        for tid, c in rows["cold"].items():
            w = rows["warm"].get(tid, {})
            print(f"| {tid} | {c['env_s']:.2f} | {w.get('env_s', 0):.3f} | {c['env_status']} / {w.get('env_status')} | "
                  f"{c['baseline_failing']} | {c['f2p_fail_before']}/{c['f2p_total']} | "
                  f"{c['f2p_pass_after']}/{c['f2p_total']} | {c['p2p_failing_before']}/{c['p2p_newly_failing']} of "
                  f"{c['p2p_total']} | {c['outcome']} / {w.get('outcome')} |")
        cold_env = sum(r["env_s"] for r in rows["cold"].values())
        warm_env = sum(r["env_s"] for r in rows["warm"].values())
        built = sum(1 for r in rows["cold"].values() if r["env_status"] == "built")
        rebuilt = sum(1 for r in rows["warm"].values() if r["env_status"] == "built")
        valid = [sum(1 for r in rows[n].values() if not r["problems"]) for n in ("cold", "warm")]
        print(f"\nvalid (resolved with the gold patch, every FAIL_TO_PASS failing without it): cold {valid[0]}/{count}, "
              f"warm {valid[1]}/{count}")
        print(f"environments: {built} built cold, {rebuilt} built warm")
        ratio = warm_env / cold_env if cold_env else float("nan")
        print(f"environment time: cold {cold_env:.2f} s, warm {warm_env:.3f} s, warm/cold {ratio:.1%} (bound 10 %)")
        print(f"wall: cold {cold_wall:.0f} s, warm {warm_wall:.0f} s; quorum validate exit codes {cold_rc} / {warm_rc}")
        return 0 if cold_rc == warm_rc == 0 and ratio <= 0.10 else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
