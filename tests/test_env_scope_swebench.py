"""scope.py ordering and swebench.py models (pure)."""

from __future__ import annotations

import json

import pytest

from quorum.environments.scope import find_test_files, imports_of, module_of, order_test_files
from quorum.environments.swebench import Instance, Prediction, dump_instances, load_instances, read_predictions, write_predictions


def test_module_of():
    assert module_of("src/click/core.py") == "click.core"
    assert module_of("requests/__init__.py") == "requests"
    assert module_of("lib/pkg/mod.py", ["lib"]) == "pkg.mod"
    assert module_of("README.md") is None


def test_imports_of_absolute_from_and_relative():
    src = "import a.b.c\nfrom x.y import z\nfrom . import helpers\nfrom ..pkg.mod import thing\n"
    got = imports_of(src, "tests/unit/test_q.py")
    assert {"a", "a.b", "a.b.c", "x.y", "x.y.z", "tests.unit.helpers", "tests.pkg.mod.thing"} <= got


def test_order_covering_first():
    tests = ["tests/test_basic.py", "tests/test_termui.py", "tests/test_types.py", "tests/test_utils.py",
             "tests/test_imports.py", "tests/test_termui_impl.py"]
    sources = {
        "tests/test_basic.py": "import click\n",
        "tests/test_termui.py": "import click\n",
        "tests/test_types.py": "from click.types import ParamType\n",
        "tests/test_utils.py": "import os\n",
        "tests/test_imports.py": "from click import _termui_impl\n",
        "tests/test_termui_impl.py": "",
    }
    order = order_test_files(["src/click/_termui_impl.py", "tests/test_utils.py"], tests, sources)
    assert order.covering == ["tests/test_utils.py", "tests/test_imports.py", "tests/test_termui_impl.py"]
    assert order.reasons["tests/test_imports.py"] == "imports click._termui_impl"
    assert order.reasons["tests/test_termui_impl.py"] == "named after src/click/_termui_impl.py"
    # package importers come before the unrelated rest
    assert order.rest[:2] == ["tests/test_basic.py", "tests/test_termui.py"]
    assert order.rest[-1] == "tests/test_types.py" or "types" not in order.reasons.get("tests/test_types.py", "")
    order2 = order_test_files(["src/click/types.py"], tests, sources)
    assert order2.covering == ["tests/test_types.py"]


def test_find_test_files(tmp_path):
    (tmp_path / "tests" / "sub").mkdir(parents=True)
    (tmp_path / ".venv").mkdir()
    for rel in ("tests/test_a.py", "tests/sub/b_test.py", "tests/helpers.py", ".venv/test_x.py", "test_top.py"):
        (tmp_path / rel).write_text("")
    assert find_test_files(tmp_path) == ["test_top.py", "tests/sub/b_test.py", "tests/test_a.py"]


def _raw(**kw):
    d = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "fix it",
         "patch": "diff --git a/x b/x\n", "test_patch": "", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": ["t.py::b"]}
    d.update(kw)
    return d


def test_instance_accepts_lists_and_json_strings(tmp_path):
    a = Instance.model_validate(_raw())
    b = Instance.model_validate(_raw(FAIL_TO_PASS='["t.py::a"]', PASS_TO_PASS="[]", snapshot="o__r-1/repo"))
    assert a.FAIL_TO_PASS == b.FAIL_TO_PASS == ["t.py::a"]
    assert b.PASS_TO_PASS == []
    assert b.model_extra == {"snapshot": "o__r-1/repo"}  # unknown fields kept
    with pytest.raises(ValueError):
        Instance.model_validate(_raw(FAIL_TO_PASS='{"not": "a list"}'))
    path = tmp_path / "i.jsonl"
    dump_instances(path, [a, b], json_strings=True)
    first = json.loads(path.read_text().splitlines()[0])
    assert first["FAIL_TO_PASS"] == '["t.py::a"]'  # SWE-bench's own shape
    assert load_instances(path) == [a, b]


def test_instance_overrides():
    inst = Instance.model_validate(_raw(python_deps=["urllib3<2"], python="3.10", test_command="pytest -x"))
    o = inst.overrides()
    assert (o.python_deps, o.python, o.test_command) == (["urllib3<2"], "3.10", "pytest -x")


def test_predictions_have_exactly_the_harness_fields(tmp_path):
    path = tmp_path / "predictions.jsonl"
    n = write_predictions(path, [Prediction(instance_id="o__r-1", model_name_or_path="quorum/x", model_patch="diff")])
    assert n == 1
    line = json.loads(path.read_text())
    assert list(line) == ["instance_id", "model_name_or_path", "model_patch"]
    assert read_predictions(path)[0].model_patch == "diff"
    with pytest.raises(ValueError):
        Prediction.model_validate({"instance_id": "a", "model_name_or_path": "m", "model_patch": "", "extra": 1})
