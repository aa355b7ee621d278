"""The index: content-keyed cache, warm runs that do no work, incremental rebuilds, git trees."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

import quorum.context.index as index_module
from quorum.context.index import build_index

FILES = {
    "pkg/__init__.py": "from .a import alpha\n",
    "pkg/a.py": "def alpha(x):\n    return beta(x)\n\n\ndef beta(x):\n    return x\n",
    "pkg/b.py": "from .a import alpha\n\n\nclass Gamma:\n    def run(self):\n        return alpha(1)\n",
    "README.md": "# demo\n",
}


def age(repo, seconds: float = 10) -> None:
    """Backdate every file, so the stat cache trusts them (a file modified just before being hashed is re-read)."""
    past = time.time() - seconds
    for dirpath, _, names in os.walk(repo):
        for name in names:
            os.utime(os.path.join(dirpath, name), (past, past))


def test_warm_run_on_an_unchanged_tree_does_no_work(make_repo, cache_dir, monkeypatch):
    repo = make_repo(FILES)
    age(repo)
    cold = build_index(repo, cache_dir)
    assert not cold.stats["warm"] and cold.stats["parsed"] == 4
    assert build_index(repo, cache_dir).stats["warm"]  # the stat cache is now trusted

    def no_reading(*args, **kwargs):
        raise AssertionError("a warm run read a file")

    monkeypatch.setattr(index_module, "analyze", no_reading)
    monkeypatch.setattr(index_module.Path, "read_bytes", no_reading)
    warm = build_index(repo, cache_dir)
    assert warm.stats["warm"] and warm.key == cold.key
    assert warm.defs.keys() == cold.defs.keys()


def test_a_change_rebuilds_and_reparses_only_the_changed_file(make_repo, cache_dir):
    repo = make_repo(FILES)
    first = build_index(repo, cache_dir)
    (repo / "pkg/a.py").write_text("def alpha(x):\n    return x\n\n\ndef delta(y):\n    return y\n")
    second = build_index(repo, cache_dir)
    assert second.key != first.key and not second.stats["warm"]
    assert second.stats["parsed"] == 1
    assert "delta" in second.defs and "beta" not in second.defs


def test_same_size_rewrite_within_the_racy_window_is_seen(make_repo, cache_dir):
    repo = make_repo({"m.py": "def aaaa():\n    pass\n"})
    build_index(repo, cache_dir)
    st = os.stat(repo / "m.py")
    (repo / "m.py").write_text("def bbbb():\n    pass\n")  # same size
    os.utime(repo / "m.py", ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    assert "bbbb" in build_index(repo, cache_dir).defs


def test_the_same_content_elsewhere_loads_the_cached_index(make_repo, cache_dir, tmp_path):
    repo = make_repo(FILES)
    first = build_index(repo, cache_dir)
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    again = build_index(copy, cache_dir)
    assert again.stats["warm"] and again.key == first.key and again.root == str(copy.resolve())


def test_no_cache_dir_builds_in_memory(make_repo, tmp_path):
    repo = make_repo(FILES)
    index = build_index(repo)
    assert index.indexed and not any(p.suffix == ".pkl" for p in tmp_path.rglob("*"))


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def test_git_tree_lists_tracked_and_untracked_but_not_ignored(make_repo, cache_dir):
    repo = make_repo({**FILES, ".gitignore": "build/\n*.log\n", "build/gen.py": "def generated():\n    pass\n",
                      "debug.log": "x\n"})  # fmt: skip
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    (repo / "pkg/new.py").write_text("def fresh():\n    pass\n")
    index = build_index(repo, cache_dir)
    assert "pkg/new.py" in index.indexed and "fresh" in index.defs
    assert "build/gen.py" not in index.files and "debug.log" not in index.files
    assert not any(p.startswith(".git/") for p in index.files)


def test_import_graph_and_module_names(make_repo, cache_dir):
    index = build_index(make_repo(FILES), cache_dir)
    assert index.module_of["pkg/a.py"] == "pkg.a"
    assert index.imports["pkg/b.py"] == ["pkg/a.py"]
    assert set(index.imported_by["pkg/a.py"]) == {"pkg/__init__.py", "pkg/b.py"}


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_empty_python_files_do_not_break_anything(make_repo, cache_dir, content):
    repo = make_repo({"pkg/empty.py": content, "pkg/a.py": FILES["pkg/a.py"]})
    index = build_index(repo, cache_dir)
    from quorum.context.rank import rank

    assert rank(index, "alpha").files[0].path == "pkg/a.py"


def test_a_git_tree_leaves_out_caches_and_environments_git_does_not_ignore(make_repo, cache_dir):
    repo = make_repo({**FILES, ".venv/lib/site.py": "def vendored():\n    pass\n",
                      "pkg/__pycache__/a.cpython-311.pyc": b"\x00\x01", ".pytest_cache/v/cache/nodeids": "[]\n",
                      "pkg.egg-info/PKG-INFO": "Name: pkg\n"})  # fmt: skip
    git(repo, "init", "-q")
    index = build_index(repo, cache_dir)
    assert set(index.files) == set(FILES)
    assert "vendored" not in index.defs


def test_many_files_are_analysed_in_worker_processes_even_from_a_threaded_process(make_repo, cache_dir, monkeypatch):
    """A Prefect run has threads: workers then come from a fork server, never a fork of the run itself."""
    import threading

    import quorum.context.index as index_module

    monkeypatch.setattr(index_module, "PARALLEL_MIN_FILES", 10)
    files = {f"pkg/m{i}.py": f"def function_{i}(x):\n    return x + {i}\n" for i in range(30)}
    repo = make_repo(files)
    serial = build_index(repo, workers=1)
    methods: list[str | None] = []
    original = index_module._start_method
    monkeypatch.setattr(index_module, "_start_method", lambda: methods.append(original()) or methods[-1])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        parallel = build_index(repo, cache_dir, workers=2)
    finally:
        stop.set()
        other.join()
    assert methods == ["forkserver"]
    assert parallel.stats["parsed"] == 30 and parallel.defs.keys() == serial.defs.keys()
    assert [parallel.symbols(p) for p in sorted(files)] == [serial.symbols(p) for p in sorted(files)]
