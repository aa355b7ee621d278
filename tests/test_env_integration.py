"""Real environments: uv from PyPI, tests run with the environment's interpreter.

Repositories are created under tmp_path. One environment cache for the module (so identical
declarations share one environment, as they would across tasks), a shared uv download cache
under .cache/ so repeated runs do not download again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from quorum.environments.baseline import evaluate_patch, judge, run_baseline
from quorum.environments.build import ensure_environment, using_environment
from quorum.environments.requirements import EnvOverrides, discover_pythons, spec_for_tree
from quorum.environments.testrun import run_scoped, run_tests
from quorum.environments.task_env import uv_binary

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent.parent
UV = uv_binary()
UV_CACHE = HERE / ".venv-tools" / "test-uv-cache"  # kept between runs, ignored by git


@pytest.fixture(scope="module")
def pythons():
    found = discover_pythons()
    assert found, "no interpreter found"
    return found


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("envs")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    return root


def build(tree: Path, pythons, cache: Path, overrides: EnvOverrides | None = None):
    spec = spec_for_tree(tree, pythons, overrides)
    env = ensure_environment(spec, cache, uv=UV, tree=str(tree), uv_cache_dir=UV_CACHE)
    return spec, env


def runner_for(spec, env, ws: Path, **kw):
    def run(node_ids):
        return run_tests(env.python, ws, node_ids=node_ids, source_roots=spec.source_roots,
                         readable=env.readable_dirs, per_test_timeout_s=kw.pop("per_test", 30), **kw)
    return run


SIMPLE_PYPROJECT = """
    [project]
    name = "simple"
    version = "0.1"
    requires-python = ">=3.8"
    [dependency-groups]
    test = ["pytest"]
"""


# ---------------------------------------------------------------------------------------------


def test_dependency_from_pypi_src_layout_and_isolation(tmp_path, pythons, cache):
    ws = write(tmp_path / "repo", {
        "pyproject.toml": """
            [project]
            name = "demo"
            version = "0.1"
            requires-python = ">=3.9"
            dependencies = ["packaging>=21"]
            [dependency-groups]
            test = ["pytest>=7"]
        """,
        "src/demo/__init__.py": "",
        "src/demo/core.py": """
            from packaging.version import Version

            def newer(a, b):
                return Version(a) > Version(b)
        """,
        "tests/test_core.py": """
            from demo.core import newer

            def test_newer():
                assert newer("1.10", "1.9")
        """,
        "tests/test_param.py": """
            import pytest

            @pytest.mark.parametrize("url, n", [("http://x/a b#c", 1), ("http://y/", 2)])
            def test_param(url, n):
                assert url.startswith("http")
        """,
        "tests/test_isolation.py": """
            import importlib.util, os, sys
            import demo

            def test_code_under_test_comes_from_the_workspace():
                assert demo.__file__.startswith(os.path.join(os.getcwd(), "src", "demo"))

            def test_nothing_of_the_caller_on_the_path():
                assert importlib.util.find_spec("pydantic") is None  # in quorum's venv, not here
                assert not any("scratch/envs/.venv" in p for p in sys.path)
                assert "OPENAI_API_KEY" not in os.environ

            def test_slow_hang():
                import time
                time.sleep(60)
        """,
    })
    spec, env = build(ws, pythons, cache)
    assert env.status == "built", env.log
    assert spec.source_roots == ["src"] and "packaging>=21" in spec.requirements
    freeze = (Path(env.env_dir) / "freeze.txt").read_text()
    assert "packaging==" in freeze and "demo" not in freeze  # the project itself is not installed
    # built in a staging directory, published by rename: bytecode names the published path
    probe = subprocess.run([env.python, "-c", textwrap.dedent("""
        import glob, marshal, sys
        pyc = glob.glob(sys.prefix + "/lib/python*/site-packages/packaging/__pycache__/version*.pyc")[0]
        print(marshal.loads(open(pyc, "rb").read()[16:]).co_filename)
    """)], capture_output=True, text=True, check=True)
    assert probe.stdout.strip().startswith(env.env_dir + "/venv/"), probe.stdout

    import os
    os.environ["OPENAI_API_KEY"] = "sk-must-not-leak"
    try:
        started = time.monotonic()
        res = runner_for(spec, env, ws, per_test=3)(None)
    finally:
        del os.environ["OPENAI_API_KEY"]
    assert time.monotonic() - started < 40
    assert res.status("tests/test_core.py::test_newer") == "passed"
    assert res.status("tests/test_isolation.py::test_code_under_test_comes_from_the_workspace") == "passed"
    assert res.status("tests/test_isolation.py::test_nothing_of_the_caller_on_the_path") == "passed", res.output_tail
    assert res.status("tests/test_isolation.py::test_slow_hang") == "failed"  # pytest-timeout, run went on
    assert "Timeout" in res.outcomes["tests/test_isolation.py::test_slow_hang"].message

    # unknown node ids: reported, the rest still runs
    res = runner_for(spec, env, ws)(["tests/test_core.py::test_newer", "tests/test_core.py::test_gone"])
    assert res.not_found == ["tests/test_core.py::test_gone"]
    assert res.status("tests/test_core.py::test_newer") == "passed"

    # an id generated differently elsewhere (argname + index) reaches the same parameter set
    res = runner_for(spec, env, ws)(["tests/test_param.py::test_param[url1-n1]"])
    assert res.aliases == {"tests/test_param.py::test_param[url1-n1]": "tests/test_param.py::test_param[http://y/-2]"}
    assert res.status("tests/test_param.py::test_param[url1-n1]") == "passed" and not res.not_found

    # warm: the same declarations reuse the environment
    t = time.monotonic()
    spec2, env2 = build(ws, pythons, cache)
    assert env2.status == "reused" and env2.env_dir == env.env_dir and time.monotonic() - t < 2

    # scope: the tests covering the change run first, the report says what ran
    scoped = run_scoped(env.python, ws, changed_files=["src/demo/core.py"], budget_s=120,
                        source_roots=spec.source_roots, per_test_timeout_s=3)
    assert scoped.covering_files == ["tests/test_core.py"]
    assert scoped.ran_files == ["tests/test_core.py", "tests/test_isolation.py", "tests/test_param.py"]
    assert not scoped.not_run_files
    assert "covering the change: 1 file" in scoped.report()


def test_preexisting_failure_is_not_blamed_and_a_breaking_patch_is(tmp_path, pythons, cache):
    files = {
        "pyproject.toml": SIMPLE_PYPROJECT,
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": """
            from calc import add

            def test_add():
                assert add(2, 2) == 4

            def test_known_broken():
                assert add(0.1, 0.2) == 0.3  # fails at the base already
        """,
    }
    ws = write(tmp_path / "repo", files)
    spec, env = build(ws, pythons, cache)
    assert env.ok, env.log
    run = runner_for(spec, env, ws)
    base = run_baseline(run, None, cache_path=tmp_path / "baseline.json", base_commit="c0", env_key=env.key)
    assert base.failing == ["tests/test_calc.py::test_known_broken"] and base.flaky == []
    assert "tests/test_calc.py::test_add" in base.passed
    assert run_baseline(run, None, cache_path=tmp_path / "baseline.json").cached  # cached per base + env

    # a patch that adds a feature and its (FAIL_TO_PASS) test, not touching the broken test
    write(ws, {"calc.py": "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n",
               "tests/test_sub.py": "from calc import sub\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"})
    verdict, after = evaluate_patch(run, base, None, fail_to_pass=["tests/test_sub.py::test_sub"])
    assert verdict.status == "resolved", verdict.summary()
    assert verdict.ignored_preexisting == ["tests/test_calc.py::test_known_broken"]

    # a patch that breaks a test that passed at the base
    write(ws, {"calc.py": "def add(a, b):\n    return a - b\n"})
    verdict, _ = evaluate_patch(run, base, None)
    assert verdict.status == "unresolved"
    assert verdict.newly_failing == ["tests/test_calc.py::test_add"]
    assert "tests/test_calc.py::test_known_broken" not in verdict.newly_failing


def test_flaky_test_is_marked_flaky_and_never_blamed(tmp_path, pythons, cache):
    counter_dir = tmp_path / "counter"
    counter_dir.mkdir()
    ws = write(tmp_path / "repo", {
        "pyproject.toml": SIMPLE_PYPROJECT,
        "tests/test_flaky.py": """
            import os
            from pathlib import Path

            def test_stable():
                assert True

            def test_flaky():
                counter = Path(os.environ["FLAKY_COUNTER_DIR"]) / "runs"
                n = int(counter.read_text()) + 1 if counter.exists() else 1
                counter.write_text(str(n))
                assert n % 2 == 0, f"odd run {n}"  # fails on runs 1, 3, ...; passes on 2, 4, ...
        """,
    })
    spec, env = build(ws, pythons, cache)
    assert env.status == "reused"  # same declarations as the previous repository: shared environment

    def run(node_ids):
        return run_tests(env.python, ws, node_ids=node_ids, source_roots=spec.source_roots,
                         extra_env={"FLAKY_COUNTER_DIR": str(counter_dir)})

    base = run_baseline(run, None)
    assert base.flaky == ["tests/test_flaky.py::test_flaky"] and base.failing == []
    after = run(None)  # third run: fails again
    assert after.status("tests/test_flaky.py::test_flaky") == "failed"
    v = judge(base, after)
    assert v.status == "resolved" and v.ignored_flaky == ["tests/test_flaky.py::test_flaky"]


def test_build_failure_is_env_error_with_log(tmp_path, pythons, cache):
    ws = write(tmp_path / "repo", {
        "requirements.txt": "quorum-no-such-package-zz9==0.0.1\n",
        "test_x.py": "def test_x():\n    pass\n",
    })
    spec, env = build(ws, pythons, cache)
    assert env.status == "env_error" and not env.ok
    assert "install failed" in env.error
    assert "quorum-no-such-package-zz9" in env.log
    assert not (cache / spec.key).exists()


def test_real_sdist_from_pypi(tmp_path, pythons, monkeypatch):
    """One real package's source distribution, downloaded from PyPI here, through the pipeline's own
    functions (quorum.environments.task_env, what the environment / baseline / repo-tests tasks call):
    a sandboxed build, its suite as the baseline, then a round that breaks it, judged against it."""
    from quorum.domain.manifest import TaskEnvironment
    from quorum.environments import task_env

    dl = tmp_path / "dl"
    # quorum's .venv has no pip (uv sync); the Makefile's .venv-tools has one (it installs uv with it)
    pip_python = HERE / ".venv-tools" / "bin" / "python"
    subprocess.run([str(pip_python if pip_python.exists() else sys.executable), "-m", "pip", "download",
                    "-q", "--no-deps", "--no-binary", ":all:", "iniconfig==2.3.1", "-d", str(dl)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (sdist,) = dl.glob("iniconfig-*.tar.gz")
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    (ws,) = (tmp_path / "x").iterdir()
    write(ws, {"testing/test_origin.py": """
        import os
        import iniconfig

        def test_iniconfig_is_the_workspace_copy():  # pytest itself depends on a PyPI iniconfig
            assert iniconfig.__file__.startswith(os.path.join(os.getcwd(), "src"))
    """})
    spec = spec_for_tree(ws, pythons)  # pure: what the build installs
    assert spec.source_roots == ["src"]
    assert any(r.startswith("pytest>=8") for r in spec.requirements)  # from its dev dependency group

    monkeypatch.setenv("QUORUM_ENV_CACHE", str(tmp_path / "envs"))
    env = task_env.prepare(str(ws), TaskEnvironment())  # in the sandbox, as the pipeline builds it
    assert env.status == "built", env.error + env.log[-3000:]
    assert env.key == spec.key and env.source_roots == ["src"]
    env = task_env.take_baselines(env, str(ws), None)
    base = env.baseline
    assert base is not None and base.failing == [] and base.erroring == [] and base.flaky == [], base.first_run
    assert len(base.passed) >= 40, base.first_run
    assert "testing/test_origin.py::test_iniconfig_is_the_workspace_copy" in base.passed

    # a round: the patch breaks the parser; the tests covering it run first, what broke is blamed
    parse = ws / "src" / "iniconfig" / "_parse.py"
    text = parse.read_text()
    assert "value = value.strip()" in text
    parse.write_text(text.replace("value = value.strip()", "value = value", 1))  # values keep their blanks
    report = task_env.verify_round(env, str(ws), ["src/iniconfig/_parse.py"])
    assert report.status.value == "failed", report.summary
    assert report.tests.newly_failing and not report.tests.preexisting_failing, report.summary
    assert "testing/test_iniconfig.py" in report.tests.covering_files
    assert "NEWLY FAILING" in report.summary
    parse.write_text(text)
    assert task_env.verify_round(env, str(ws), ["src/iniconfig/_parse.py"]).status.value == "passed"
    with using_environment(Path(env.cache_dir), env.key):  # held shared while in use
        assert Path(env.python).exists()


def test_a_round_that_runs_split_confirms_a_failure_the_baselines_way(tmp_path, monkeypatch):
    """The baseline runs the whole suite in one process; a round runs the tests covering the change
    first, then the rest. A test that needs what an earlier file imported fails when it runs first:
    that is the order, not the patch (click's test_echo_via_pager under pallets__click-fc5c7f45)."""
    from quorum.domain.manifest import TaskEnvironment
    from quorum.environments import task_env

    ws = write(tmp_path / "repo", {
        "pkg/__init__.py": "",
        "pkg/impl.py": "VALUE = 1\n",
        "pkg/zed.py": "def zed():\n    return 0\n",
        "tests/test_a.py": "import pkg.impl\n\ndef test_a():\n    assert pkg.impl.VALUE == 1\n",
        "tests/test_z.py": """
            import pkg
            import pkg.zed

            def test_z():  # pkg.impl is loaded only when test_a.py ran first in the same process
                assert pkg.zed.zed() == 0 and pkg.impl.VALUE == 1
        """,
    })  # fmt: skip
    monkeypatch.setenv("QUORUM_ENV_CACHE", str(tmp_path / "envs"))
    env = task_env.prepare(str(ws), TaskEnvironment(), force=True)
    assert env.status == "built", env.error + env.log[-3000:]
    env = task_env.take_baselines(env, str(ws), None)
    assert sorted(env.baseline.passed) == ["tests/test_a.py::test_a", "tests/test_z.py::test_z"]

    (ws / "pkg" / "zed.py").write_text("def zed():\n    return 0  # unchanged behaviour\n")
    report = task_env.verify_round(env, str(ws), ["pkg/zed.py"])
    assert report.tests.covering_files == ["tests/test_z.py"]  # ran first, alone: it failed there
    assert report.status.value == "passed", report.summary
    assert report.tests.newly_failing == [] and report.tests.flaky == ["tests/test_z.py::test_z"]
    assert report.tests.rerun == "the whole suite in one process, as at the baseline"

    (ws / "pkg" / "zed.py").write_text("def zed():\n    return 1\n")  # a real break is still blamed
    report = task_env.verify_round(env, str(ws), ["pkg/zed.py"])
    assert report.status.value == "failed" and report.tests.newly_failing == ["tests/test_z.py::test_z"]
