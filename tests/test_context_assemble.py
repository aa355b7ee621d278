"""Region assembly and per-stage context: budgets, exact line numbers, whole files, merging."""

from __future__ import annotations

import re
import subprocess

import pytest

from quorum.context.api import context_json
from quorum.context.assemble import implementer_context, planner_context, reviewer_context, select
from quorum.context.index import build_index
from quorum.context.python_symbols import split_lines
from quorum.context.rank import rank
from quorum.context.repomap import repo_map


def big_module(n_functions: int = 400) -> str:
    parts = ['"""A large module."""\nimport os\nimport sys\n\nCONSTANT = 1\n']
    for i in range(n_functions):
        parts.append(
            f"\n\ndef helper_{i}(value, scale={i}):\n"
            f'    """Helper number {i}."""\n'
            f"    result = value * scale + {i}\n"
            f"    return os.path.join(str(result), 'part_{i}')\n"
        )
    parts.append(
        "\n\ndef resolve_mirror_timeout(settings):\n"
        '    """Timeout for the mirror, from the settings."""\n'
        "    timeout = settings.get('mirror_timeout', 30)\n"
        "    if timeout < 0:\n"
        "        raise ValueError('mirror timeout must not be negative')\n"
        "    return timeout\n"
    )
    for i in range(400, 400 + n_functions // 2):
        parts.append(f"\n\ndef helper_{i}(value):\n    return value - {i}\n")
    return "".join(parts)


def words(text: str) -> int:
    """A counter unlike chars/4, to check that budgets use the counter they are given."""
    return len(text.split())


def check_lines_match_disk(repo, text: str) -> int:
    """Every rendered `N|code` line equals line N of the file on disk; returns how many were checked."""
    checked = 0
    current = None
    for line in text.splitlines():
        header = re.match(r"### (\S+) lines (\d+)-(\d+)", line)
        if header:
            current = split_lines((repo / header.group(1)).read_text())
            continue
        numbered = re.match(r"(\d+)\|(.*)$", line)
        if numbered and current is not None:
            assert current[int(numbered.group(1)) - 1] == numbered.group(2)
            checked += 1
    return checked


@pytest.fixture
def big_repo(make_repo):
    return make_repo({
        "pkg/__init__.py": "",
        "pkg/big.py": big_module(),
        "pkg/small.py": "from .big import resolve_mirror_timeout\n\n\ndef configure(settings):\n"
                        "    return resolve_mirror_timeout(settings)\n",
        "tests/test_big.py": "from pkg.big import resolve_mirror_timeout\n\n\ndef test_negative_timeout():\n"
                             "    assert resolve_mirror_timeout({'mirror_timeout': 5}) == 5\n",
    })  # fmt: skip


def test_a_file_larger_than_the_budget_gives_its_relevant_region(big_repo, cache_dir):
    index = build_index(big_repo, cache_dir)
    whole = index.indexed["pkg/big.py"]
    assert whole.chars // 4 > 10_000  # far bigger than the budget below
    ranking = rank(index, "a negative mirror timeout is accepted")
    assert ranking.files[0].path == "pkg/big.py"
    for budget in (300, 1_000, 4_000):
        picker = select(index, ranking, budget)
        regions = picker.regions()
        assert 0 < sum(r.tokens for r in regions) <= budget
        target = next(s for s in index.symbols("pkg/big.py") if s.name == "resolve_mirror_timeout")
        assert any(r.path == "pkg/big.py" and r.start_line <= target.start_line and target.end_line <= r.end_line
                   for r in regions)  # fmt: skip
        assert not any(r.start_line == 1 and r.end_line == whole.lines for r in regions if r.path == "pkg/big.py")
        assert check_lines_match_disk(big_repo, picker.render()) > 0


def test_small_top_file_is_taken_whole(make_repo, cache_dir):
    repo = make_repo({"pkg/tiny.py": "def add_numbers(a, b):\n    return a - b\n", "pkg/other.py": "X = 1\n"})
    index = build_index(repo, cache_dir)
    regions = select(index, rank(index, "add_numbers subtracts"), 1_000).regions()
    assert regions[0].path == "pkg/tiny.py" and (regions[0].start_line, regions[0].end_line) == (1, 2)
    assert any("whole file" in reason for reason in regions[0].reasons)


def test_every_stage_respects_its_budget_with_the_counter_it_is_given(big_repo, cache_dir):
    index = build_index(big_repo, cache_dir)
    ranking = rank(index, "a negative mirror timeout is accepted by resolve_mirror_timeout")
    for budget in (200, 800, 3_000):
        planner = planner_context(index, ranking, budget, words, map_budget=300)
        assert sum(r.tokens for r in planner.regions) <= budget
        assert planner.tokens == words(planner.text) <= budget + 300
        impl = implementer_context(index, ["pkg/big.py"], ["resolve_mirror_timeout"], budget, words, ranking=ranking)
        assert impl.tokens == words(impl.text) <= budget
        assert check_lines_match_disk(big_repo, impl.text) > 0
    rmap = repo_map(index, ranking, 150, words)
    assert rmap.tokens <= 150


def test_implementer_gets_the_named_symbol_its_class_header_and_tests(make_repo, cache_dir):
    repo = make_repo({
        "pkg/shapes.py": (
            '"""Shapes."""\nimport math\n\n\nclass Circle:\n    """A circle."""\n\n'
            "    def __init__(self, r):\n        self.r = r\n\n"
            + "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(200))
            + "    def area(self):\n        return math.pi * self.r\n"
        ),
        "tests/test_shapes.py": (
            "from pkg.shapes import Circle\n\n\ndef test_area():\n    assert Circle(1).area() > 3\n\n\n"
            "def test_other():\n    assert True\n"
        ),
    })  # fmt: skip
    index = build_index(repo, cache_dir)
    area = next(s for s in index.symbols("pkg/shapes.py") if s.qualname == "Circle.area")
    ctx = implementer_context(index, ["pkg/shapes.py"], ["pkg/shapes.py:Circle.area"], 300)
    spans = [(r.path, r.start_line, r.end_line) for r in ctx.regions]
    assert any(p == "pkg/shapes.py" and s <= area.start_line and area.end_line <= e for p, s, e in spans)
    assert any(p == "pkg/shapes.py" and s <= 5 <= e for p, s, e in spans)  # `class Circle:` header
    assert any(p == "pkg/shapes.py" and s <= 2 <= e for p, s, e in spans)  # imports
    assert any(p == "tests/test_shapes.py" and s <= 4 <= e for p, s, e in spans)  # test_area
    assert f"{area.start_line}|    def area(self):" in ctx.text
    assert ctx.tokens <= 300
    by_lines = implementer_context(index, [], [f"pkg/shapes.py:{area.start_line + 1}"], 300)
    assert any(r.start_line <= area.start_line and area.end_line <= r.end_line for r in by_lines.regions)


def test_reviewer_gets_the_patch_the_patched_function_and_its_callers(big_repo, cache_dir):
    subprocess.run(["git", "init", "-q"], cwd=big_repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=big_repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=big_repo, check=True
    )
    path = big_repo / "pkg/big.py"
    path.write_text(path.read_text().replace("if timeout < 0:", "if timeout is None or timeout < 0:"))
    patch = subprocess.run(["git", "diff"], cwd=big_repo, check=True, capture_output=True, text=True).stdout
    index = build_index(big_repo, cache_dir)
    target = next(s for s in index.symbols("pkg/big.py") if s.name == "resolve_mirror_timeout")
    ctx = reviewer_context(index, patch, 1_500)
    assert ctx.tokens <= 1_500
    assert ctx.text.startswith("## Patch\n") and "timeout is None" in ctx.text
    spans = [(r.path, r.start_line, r.end_line) for r in ctx.regions]
    assert ("pkg/big.py", target.start_line, target.end_line) in [(p, s, e) for p, s, e in spans]
    assert any(p == "pkg/small.py" for p, _, _ in spans)  # the caller
    assert any(p == "tests/test_big.py" for p, _, _ in spans)  # the test
    assert check_lines_match_disk(big_repo, ctx.text) > 0


def test_repo_map_lists_paths_and_skeletons_with_line_numbers(big_repo, cache_dir):
    index = build_index(big_repo, cache_dir)
    ranking = rank(index, "resolve_mirror_timeout accepts negative values")
    rmap = repo_map(index, ranking, 2_000)
    assert rmap.tokens <= 2_000
    assert "pkg/: __init__.py big.py* small.py" in rmap.text.replace("small.py*", "small.py")
    target = next(s for s in index.symbols("pkg/big.py") if s.name == "resolve_mirror_timeout")
    assert re.search(
        rf"\b{target.start_line} def resolve_mirror_timeout\(settings\)  # Timeout for the mirror", rmap.text
    )
    assert rmap.skeletons[0] == "pkg/big.py"


def test_context_json_has_the_stable_shape(big_repo, cache_dir):
    out = context_json(big_repo, "negative mirror timeout", 1_000, cache_dir=cache_dir)
    assert set(out) == {"files", "context", "tokens"}
    assert set(out["files"][0]) == {"path", "score", "reasons"}
    assert set(out["context"][0]) == {"path", "start_line", "end_line", "tokens"}
    assert out["tokens"] == sum(r["tokens"] for r in out["context"]) <= 1_000
    assert len(out["files"]) == len(build_index(big_repo, cache_dir).indexed)  # fewer than 20 files: all of them
