"""The layout holds: one installed package, and imports that point one way (import-linter contracts)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def installed_tree(into: Path) -> Path:
    """The package as site-packages holds it: quorum/ with flows/, tasks/, blocks/ mapped in (pyproject's package-dir)."""
    package = into / "quorum"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "quorum", package, ignore=ignore)
    for name, folder in SETUPTOOLS["package-dir"].items():
        shutil.copytree(ROOT / folder, into / name.replace(".", "/"), ignore=ignore)
    return into


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_every_package_in_the_tree_is_installed_and_nothing_else_is():
    mapped = {name: ROOT / folder for name, folder in SETUPTOOLS["package-dir"].items()}
    found = {"quorum"} | set(mapped)
    for init in (ROOT / "quorum").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for name, folder in mapped.items():
        found |= {".".join((name, *init.parent.relative_to(folder).parts)) for init in folder.rglob("__init__.py")}
    assert sorted(SETUPTOOLS["packages"]) == sorted(found)
    assert all(name == "quorum" or name.startswith("quorum.") for name in SETUPTOOLS["packages"])


def test_the_import_contracts_hold(tmp_path):
    result = lint_imports(installed_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("quorum/domain/cost.py", "import quorum.flows.batch", "the domain is pure"),
        ("quorum/domain/policy.py", "import prefect", "the domain is pure"),
        ("quorum/store/base.py", "from quorum.tasks import store", "the core never imports"),
        ("quorum/tasks/plan.py", "import quorum.flows.pipeline", "entry points on top"),
        ("quorum/context/rank.py", "import litellm", "the context index is pure"),
        ("quorum/context/index.py", "from quorum.tasks import plan", "the core never imports"),
    ],
)
def test_a_back_arrow_breaks_a_contract(tmp_path, module, bad_import, contract):
    tree = installed_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberate back-arrow\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
