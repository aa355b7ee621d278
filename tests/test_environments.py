"""Repositories with their own test environment, end to end (issue 13), on repositories the tests create.

`quorum validate` over seven SWE-bench-format instances through the real pipeline (the gold roster,
a Prefect server, the sandbox, uv and the package index):

* `needs-dep`: imports `iniconfig` from PyPI (not in quorum's environment... and not on its path);
* `preexisting`: a test already failing on the base; the patch does not touch it -> not blamed;
* `flaky`: a test that fails once, then passes -> marked flaky, never blamed;
* `broken-build`: requires a package that does not exist -> `env_error`, never `failed`;
* `missing-dep`: the instance's own `python_deps` cannot be installed -> `env_error`;
* `wrong-fix`: a "fix" that leaves FAIL_TO_PASS failing -> `failed`, named broken;
* `suite-broken`: builds, but a conftest cannot import: the suite does not run on the base -> `env_error`;

then `predictions.jsonl` with the harness's field names. A second test gives a build step (the
repository's own setup.py, run by uv) a planted secret to read and a file outside its directory
to write: it finds nothing and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quorum.domain.models import TaskResult

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
QUORUM = str(Path(sys.executable).parent / "quorum")


def git_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    subprocess.run("git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm base",
                   shell=True, cwd=root, check=True)  # fmt: skip
    return root


def diff_of(repo: Path, change: dict[str, str]) -> str:
    """A patch made by editing files in the repository and diffing (then reverted)."""
    for rel, text in change.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    patch = subprocess.run(["git", "diff", "--cached"], cwd=repo, capture_output=True, text=True, check=True).stdout
    subprocess.run("git reset -q --hard && git clean -qfd", shell=True, cwd=repo, check=True)
    return patch


def unindexed(patch: str) -> list[str]:
    return [line for line in patch.strip().splitlines() if not line.startswith("index ")]


def instance(iid: str, repo: Path, patch: str, test_patch: str, f2p: list[str], p2p: list[str]) -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    return {"instance_id": iid, "repo": f"local/{iid}", "base_commit": head, "problem_statement": f"Fix {iid}.",
            "patch": patch, "test_patch": test_patch, "FAIL_TO_PASS": json.dumps(f2p), "PASS_TO_PASS": json.dumps(p2p)}


def corpus(tmp: Path) -> tuple[Path, dict]:
    made = {}
    # 1. a dependency from PyPI
    repo = git_repo(tmp / "needs-dep", {
        "pyproject.toml": """
            [project]
            name = "inikit"
            version = "0.1"
            dependencies = ["iniconfig>=2"]
            [tool.pytest.ini_options]
            pythonpath = ["."]
        """,
        "inikit.py": "import iniconfig\n\ndef section_names(path):\n    return []\n",
        "tests/test_basic.py": "import inikit\n\ndef test_imports():\n    assert inikit.section_names\n",
    })  # fmt: skip
    gold = diff_of(repo, {"inikit.py": "import iniconfig\n\ndef section_names(path):\n    return list(iniconfig.IniConfig(path).sections)\n"})
    tests = diff_of(repo, {"tests/test_sections.py": """
        import inikit

        def test_sections(tmp_path):
            ini = tmp_path / "a.ini"
            ini.write_text("[one]\\nx = 1\\n[two]\\n")
            assert inikit.section_names(str(ini)) == ["one", "two"]
    """})  # fmt: skip
    made["needs-dep"] = instance("needs-dep", repo, gold, tests, ["tests/test_sections.py::test_sections"],
                                 ["tests/test_basic.py::test_imports"])  # fmt: skip
    # 2. a test failing before the patch, in a file the patch does not touch
    repo = git_repo(tmp / "preexisting", {
        "calc.py": "def add(a, b):\n    return a - b\n",
        "other.py": "def broken():\n    return 1\n",
        "tests/test_other.py": "from other import broken\n\ndef test_known_broken():\n    assert broken() == 2\n",
        "tests/test_calc.py": "from calc import add\n\ndef test_zero():\n    assert add(0, 0) == 0\n",
    })  # fmt: skip
    gold = diff_of(repo, {"calc.py": "def add(a, b):\n    return a + b\n"})
    tests = diff_of(repo, {"tests/test_add.py": "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"})
    made["preexisting"] = instance("preexisting", repo, gold, tests, ["tests/test_add.py::test_add"],
                                   ["tests/test_calc.py::test_zero"])  # fmt: skip
    # the same repository twice more: a "fix" that does not fix (FAIL_TO_PASS still failing), and an
    # instance whose own addition (python_deps) cannot be installed
    wrong = diff_of(repo, {"calc.py": "def add(a, b):\n    return a * b\n"})
    made["wrong-fix"] = {**made["preexisting"], "instance_id": "wrong-fix", "patch": wrong}
    made["missing-dep"] = {**made["preexisting"], "instance_id": "missing-dep",
                           "python_deps": ["quorum-no-such-package-zz9"]}  # fmt: skip
    # 3. a flaky test: fails the first time it runs in a workspace copy, passes on the re-run
    repo = git_repo(tmp / "flaky", {
        "calc.py": "def mul(a, b):\n    return a + b\n",
        "tests/test_flaky.py": """
            import os

            def test_flaky():
                marker = os.path.join(os.path.dirname(__file__), ".ran-once")
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    raise AssertionError("first run fails")
        """,
        "tests/test_one.py": "from calc import mul\n\ndef test_one():\n    assert mul(0, 0) == 0\n",
    })  # fmt: skip
    gold = diff_of(repo, {"calc.py": "def mul(a, b):\n    return a * b\n"})
    tests = diff_of(repo, {"tests/test_mul.py": "from calc import mul\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"})
    made["flaky"] = instance("flaky", repo, gold, tests, ["tests/test_mul.py::test_mul"], ["tests/test_one.py::test_one"])
    # 4. an environment that cannot be built
    repo = git_repo(tmp / "broken-build", {
        "pyproject.toml": '[project]\nname = "nobuild"\nversion = "0.1"\n'
                          'dependencies = ["quorum-no-such-package-for-tests==0.0.1"]\n',
        "nobuild.py": "X = 1\n",
        "tests/test_x.py": "def test_x():\n    assert True\n",
    })  # fmt: skip
    gold = diff_of(repo, {"nobuild.py": "X = 2\n"})
    tests = diff_of(repo, {"tests/test_y.py": "from nobuild import X\n\ndef test_y():\n    assert X == 2\n"})
    made["broken-build"] = instance("broken-build", repo, gold, tests, ["tests/test_y.py::test_y"], [])
    # 5. an environment that builds but cannot run the suite at all (a conftest importing what is not there)
    repo = git_repo(tmp / "suite-broken", {
        "conftest.py": "import quorum_not_installed_zz9  # noqa: F401\n",
        "calc.py": "def sub(a, b):\n    return a + b\n",
        "tests/test_calc.py": "def test_nothing():\n    assert True\n",
    })  # fmt: skip
    gold = diff_of(repo, {"calc.py": "def sub(a, b):\n    return a - b\n"})
    tests = diff_of(repo, {"tests/test_sub.py": "from calc import sub\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"})
    made["suite-broken"] = {**instance("suite-broken", repo, gold, tests, ["tests/test_sub.py::test_sub"], []),
                            "python_deps": ["iniconfig"]}  # its own environment: the shared one stays the trio's
    lines = []
    for iid, inst in made.items():
        lines.append(json.dumps(inst))
    (tmp / "instances.jsonl").write_text("\n".join(lines) + "\n")
    manifest = tmp / "manifest.yaml"
    manifest.write_text("batch: created\ninstances: instances.jsonl\nrepos:\n"
                        + "".join(f"  {inst['repo']}: {inst['repo'].removeprefix('local/')}\n"
                                  for inst in {i["repo"]: i for i in made.values()}.values()))  # fmt: skip
    return manifest, made


# Six tasks through a Prefect server, uv and the sandbox: about 2 minutes on an idle machine, past the
# suite's 300 s default (which counts the session server's start too) on a loaded one.
@pytest.mark.timeout(1200)
def test_validate_created_repositories_env_baseline_flaky_env_error_predictions(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    manifest, made = corpus(tmp_path)
    store = tmp_path / "store"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "QUORUM_ENV_CACHE": str(tmp_path / "envs"),
           "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "cache"), "OPENAI_API_KEY": "sk-planted-never-used"}
    done = subprocess.run([QUORUM, "validate", str(manifest), "--store", str(store), "--parallel", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # exactly these broken tasks, named
    assert "4 broken task(s): wrong-fix, missing-dep, broken-build, suite-broken" in done.stderr, out
    batch = store / "runs" / "validate-created"
    results = {iid: TaskResult.model_validate_json((batch / iid / "result.json").read_text()) for iid in made}

    dep = results["needs-dep"]
    assert dep.status.value == "resolved", dep.reason
    assert dep.environment.status == "built" and dep.environment.f2p_failing_before == 1
    assert dep.acceptance.tests.fail_to_pass_passing == ["tests/test_sections.py::test_sections"]
    freeze = Path(tmp_path / "envs" / dep.environment.key / "freeze.txt").read_text().lower()
    assert "iniconfig==" in freeze and "prefect" not in freeze and "litellm" not in freeze

    pre = results["preexisting"]
    assert pre.status.value == "resolved", pre.reason
    assert pre.environment.baseline_failing == ["tests/test_other.py::test_known_broken"]
    round_report = json.loads((batch / "preexisting" / "1" / "verify" / "pytest.report.json").read_text())
    assert round_report["status"] == "passed"
    assert round_report["tests"]["preexisting_failing"] == ["tests/test_other.py::test_known_broken"]
    assert round_report["tests"]["newly_failing"] == []
    assert "failing at the baseline too (not blamed)" in round_report["summary"]

    flaky = results["flaky"]
    assert flaky.status.value == "resolved", flaky.reason
    assert flaky.environment.baseline_flaky == ["tests/test_flaky.py::test_flaky"]
    flaky_report = json.loads((batch / "flaky" / "1" / "verify" / "pytest.report.json").read_text())
    assert "tests/test_flaky.py::test_flaky" in flaky_report["tests"]["flaky"]
    assert flaky_report["tests"]["newly_failing"] == []

    broken = results["broken-build"]
    assert broken.status.value == "error" and broken.status.value != "failed"
    assert broken.reason.startswith("env_error:"), broken.reason
    assert broken.environment.status == "env_error" and broken.rounds == 0 and broken.cost.total.calls == 0
    assert "quorum-no-such-package-for-tests" in (batch / "broken-build" / "environment" / "build.log").read_text()

    wrong = results["wrong-fix"]  # the environment and baseline are fine; its patch does not fix it
    assert wrong.status.value == "failed" and wrong.rounds == 1, wrong.reason
    assert wrong.acceptance.tests.fail_to_pass_failing == ["tests/test_add.py::test_add"]
    assert wrong.acceptance.tests.newly_failing == []  # add(0, 0) is 0 either way: nothing else blamed
    missing = results["missing-dep"]
    assert missing.status.value == "error" and missing.reason.startswith("env_error:"), missing.reason
    assert "install failed" in missing.environment.error and missing.cost.total.calls == 0
    assert "quorum-no-such-package-zz9" in (batch / "missing-dep" / "environment" / "build.log").read_text()
    suite = results["suite-broken"]  # built, but its tests cannot start: env_error before any model call
    assert suite.status.value == "error" and suite.reason.startswith("env_error:"), suite.reason
    assert "do not run on the unmodified base" in suite.environment.error and suite.cost.total.calls == 0
    assert "quorum_not_installed_zz9" in (batch / "suite-broken" / "environment" / "build.log").read_text()
    # preexisting, flaky and wrong-fix declare the same (nothing but the runner's tools): one environment,
    # built once, even with two tasks at once
    same = [results[i].environment for i in ("preexisting", "flaky", "wrong-fix")]
    assert len({e.key for e in same}) == 1 and sorted(e.status for e in same) == ["built", "reused", "reused"]
    rows = {r["task_id"]: r for r in json.loads((batch / "validation.json").read_text())}
    assert [rows["preexisting"][k] for k in ("f2p_fail_before", "f2p_pass_after", "p2p_failing_before",
                                             "p2p_newly_failing", "baseline_failing")] == [1, 1, 0, 0, 1]  # fmt: skip
    assert rows["preexisting"]["problems"] == [] and rows["wrong-fix"]["f2p_pass_after"] == 0
    assert any(p.startswith("not resolved with its own patch: failed") for p in rows["wrong-fix"]["problems"])

    rows = [json.loads(line) for line in (batch / "predictions.jsonl").read_text().splitlines()]
    assert [sorted(row) for row in rows] == [["instance_id", "model_name_or_path", "model_patch"]] * len(made)
    by_id = {row["instance_id"]: row for row in rows}
    assert set(by_id) == set(made)
    assert by_id["needs-dep"]["model_name_or_path"] == "gold/implementer"
    # the patch as quorum applied it (its normalised diff: no `index` lines), which git applies to the base
    predicted = by_id["needs-dep"]["model_patch"]
    assert unindexed(predicted) == unindexed(made["needs-dep"]["patch"])
    check = subprocess.run(["git", "apply", "--check", "-"], input=predicted, cwd=tmp_path / "needs-dep",
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert by_id["broken-build"]["model_patch"] == ""
    table = (batch / "validation.md").read_text()
    assert "| needs-dep | built |" in table and "BROKEN broken-build: env_error" in table
    assert "sk-planted-never-used" not in "".join(p.read_text(errors="replace") for p in store.rglob("*") if p.is_file())


@pytest.mark.skipif(os.geteuid() != 0, reason="root mode: the build runs as the sandbox's uid")
def test_a_build_step_finds_no_planted_secret_and_changes_nothing_outside(tmp_path, monkeypatch):
    """setup.py (the repository's build code, run by uv while building) tries to read a planted key,
    a root-only file and our processes' environments, and to write outside its directory."""
    from quorum.domain.manifest import TaskEnvironment
    from quorum.environments import task_env

    monkeypatch.setenv("QUORUM_ENV_CACHE", str(tmp_path / "envs"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-planted-secret")
    secret = tmp_path / "secret.txt"
    secret.write_text("planted-file-secret")
    secret.chmod(0o600)
    outside = ROOT / f".planted-{os.getpid()}"  # not under /tmp: a place a real build could reach
    outside.write_text("untouched\n")
    outside.chmod(0o666)
    probe = tmp_path / "probe-result"
    try:
        repo = git_repo(tmp_path / "hostile", {
            "setup.py": f"""
                import glob, os, sys
                from setuptools import setup
                found = []
                if "sk-ant-planted-secret" in str(os.environ):
                    found.append("env")
                for path in [{str(secret)!r}] + glob.glob("/proc/[0-9]*/environ"):
                    try:
                        if b"planted" in open(path, "rb").read():
                            found.append(path)
                    except OSError:
                        pass
                for target in [{str(outside)!r}, {str(probe)!r}, "/etc/quorum-planted"]:
                    try:
                        with open(target, "w") as f:
                            f.write("changed by the build")
                    except OSError:
                        pass
                if found or os.getuid() == 0:  # the build fails, and says why, if anything leaked
                    sys.exit("BUILD-PROBE found=%s uid=%d" % (found, os.getuid()))
                deps = ["iniconfig"] if not found else []  # computed: quorum must run this build
                setup(name="hostile", version="0.1", py_modules=["hostile"], install_requires=deps)
            """,
            "hostile.py": "X = 1\n",
            "tests/test_h.py": "def test_h():\n    assert True\n",
        })  # fmt: skip
        prepared = task_env.prepare(str(repo), TaskEnvironment(), force=True)
        assert prepared.status == "built", prepared.error + prepared.log[-3000:]
        assert "BUILD-PROBE" not in prepared.log
        assert outside.read_text() == "untouched\n"
        assert not probe.exists() and not Path("/etc/quorum-planted").exists()
        assert secret.read_text() == "planted-file-secret"
        assert "sk-ant-planted-secret" not in prepared.log
        env_dir = tmp_path / "envs" / prepared.key
        assert "iniconfig==" in (env_dir / "freeze.txt").read_text()  # only setup.py's computed deps name it: it ran
        st = env_dir.stat()
        assert st.st_uid == 0 and not st.st_mode & 0o222  # sealed: root's, writable by no one
        assert not any(p.stat().st_mode & 0o222 for p in (env_dir / "venv" / "bin").iterdir() if not p.is_symlink())
    finally:
        outside.unlink(missing_ok=True)
