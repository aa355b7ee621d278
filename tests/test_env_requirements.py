"""Requirement parsing per file type, python choice, and the cache key (pure)."""

from __future__ import annotations

import textwrap

import pytest

from quorum.environments.pep import version_satisfies
from quorum.environments.requirements import (
    EnvOverrides,
    PythonInterpreter,
    RepoFiles,
    SpecError,
    choose_python,
    collect_dependency_files,
    derive_spec,
    parse_setup_py,
)

PYS = [PythonInterpreter(version=v, path=f"/opt/py{v}/bin/python") for v in ("3.13.0", "3.12.1", "3.11.7", "3.10.13", "3.8.18")]


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def spec(files: dict[str, str], overrides: EnvOverrides | None = None, **kw):
    return derive_spec(RepoFiles(files=files, **kw), PYS, overrides)


# ---- pyproject.toml


def test_pyproject_dependencies_and_test_extra():
    s = spec({"pyproject.toml": d("""
        [project]
        name = "Demo_Pkg"
        version = "1.0"
        requires-python = ">=3.10"
        dependencies = ["attrs>=22", "packaging"]
        [project.optional-dependencies]
        test = ["pytest>=7", "hypothesis"]
        docs = ["sphinx"]
    """)})
    assert s.project_name == "demo-pkg"
    assert s.requirements == ["attrs>=22", "packaging", "pytest>=7", "hypothesis", "pytest-timeout"]
    assert "sphinx" not in s.requirements
    assert s.python_version == "3.13.0"
    assert s.install_project == "none"


def test_pep735_groups_with_include_group_and_self_reference():
    s = spec({"pyproject.toml": d("""
        [project]
        name = "demo"
        dependencies = ["idna"]
        [project.optional-dependencies]
        socks = ["PySocks>=1.5.6"]
        [dependency-groups]
        base = ["pytest>=8"]
        test = [{include-group = "base"}, "demo[socks]", "trustme"]
        dev = ["ruff"]
    """)})
    assert s.requirements == ["idna", "PySocks>=1.5.6", "pytest>=8", "trustme", "pytest-timeout"]
    assert "ruff" not in s.requirements  # dev is only a fallback
    assert any("dependency-groups.test" in src for src in s.sources)


def test_dev_group_is_the_fallback():
    s = spec({"pyproject.toml": d("""
        [project]
        name = "x"
        [dependency-groups]
        dev = ["pytest>=8.4", "pytest-xdist"]
    """)})
    assert s.requirements == ["pytest>=8.4", "pytest-xdist", "pytest-timeout"]


def test_tox4_native_config_in_pyproject():
    s = spec({"pyproject.toml": d("""
        [project]
        name = "click"
        dependencies = ["colorama; platform_system == 'Windows'"]
        [dependency-groups]
        tests = ["pytest"]
        typing = ["mypy", "pytest"]
        [tool.tox.env_run_base]
        dependency_groups = ["tests"]
    """)})
    assert s.requirements == ["colorama; platform_system == 'Windows'", "pytest", "pytest-timeout"]


def test_dynamic_dependencies_from_file():
    s = spec({
        "pyproject.toml": d("""
            [project]
            name = "x"
            dynamic = ["dependencies"]
            [tool.setuptools.dynamic]
            dependencies = {file = ["requirements.txt"]}
        """),
        "requirements.txt": "six\n",
    })
    assert "six" in s.requirements and s.install_project == "none"


def test_dynamic_dependencies_unknown_means_build_deps():
    s = spec({"pyproject.toml": d("""
        [project]
        name = "x"
        dynamic = ["dependencies"]
    """)})
    assert s.install_project == "build-deps"


# ---- setup.cfg


def test_setup_cfg():
    s = spec({"setup.cfg": d("""
        [metadata]
        name = cfgpkg
        classifiers =
            Programming Language :: Python :: 3.10
            Programming Language :: Python :: 3.11
        [options]
        python_requires = >=3.8
        install_requires =
            requests>=2
            click
        [options.extras_require]
        testing =
            pytest
            pytest-mock
        docs = sphinx
    """)})
    assert s.project_name == "cfgpkg"
    assert s.requirements == ["requests>=2", "click", "pytest", "pytest-mock", "pytest-timeout"]
    assert s.python_version == "3.11.7"  # newest satisfying >=3.8 and not newer than listed 3.11


# ---- setup.py (never executed)


SETUP_PY = d("""
    import os, sys
    raise SystemExit("setup.py must not be executed")  # parsed, never run
    from setuptools import setup

    base = ['urllib3>=1.21,<1.27', 'certifi']
    requires = base + ['idna>=2.5; python_version >= "3"']
    test_requirements = ['pytest-httpbin==0.0.7', 'pytest>=3']

    setup(
        name='oldpkg',
        install_requires=requires,
        tests_require=test_requirements,
        python_requires=">=2.7, !=3.0.*, !=3.1.*",
        extras_require={
            'socks': ['PySocks>=1.5.6, !=1.5.7'],
            'socks:sys_platform == "win32" and python_version == "2.7"': ['win_inet_pton'],
        },
        classifiers=['Programming Language :: Python :: 3.9', 'Programming Language :: Python :: 3.10'],
    )
""")


def test_setup_py_literal_lists_via_ast(tmp_path):
    sp = parse_setup_py(SETUP_PY)
    assert sp.name == "oldpkg"
    assert sp.install_requires == ['urllib3>=1.21,<1.27', 'certifi', 'idna>=2.5; python_version >= "3"']
    assert sp.tests_require == ['pytest-httpbin==0.0.7', 'pytest>=3']
    s = spec({"setup.py": SETUP_PY})
    assert s.requirements[:3] == sp.install_requires
    assert "pytest-httpbin==0.0.7" in s.requirements  # tests_require is the source here
    assert s.python_version == "3.10.13"
    # collecting the files does not run them either
    (tmp_path / "setup.py").write_text(SETUP_PY)
    files = collect_dependency_files(tmp_path)
    assert list(files.files) == ["setup.py"]


def test_setup_py_extras_with_markers_are_folded():
    s = spec({"setup.py": SETUP_PY, "requirements-dev.txt": "-e .[socks]\npytest\n"})
    assert "PySocks>=1.5.6, !=1.5.7" in s.requirements
    assert 'win_inet_pton ; sys_platform == "win32" and python_version == "2.7"' in s.requirements
    # requirements-dev.txt wins over tests_require: the two are never mixed
    assert "pytest-httpbin==0.0.7" not in s.requirements


def test_setup_py_computed_requirements_mean_build_deps():
    s = spec({"setup.py": "from setuptools import setup\nsetup(name='x', install_requires=open('r.txt').read().split())\n"})
    assert s.install_project == "build-deps"
    assert any("install_requires" in w for w in s.warnings)


# ---- requirement files


def test_requirements_files_follow_r_and_c_and_self_reference():
    files = {
        "setup.py": "from setuptools import setup\nsetup(name='me', install_requires=['attrs'], extras_require={'x': ['six']})\n",
        "requirements-dev.txt": d("""
            # a comment
            -r requirements/base.txt
            -c constraints.txt
            -e .[x]
            --index-url https://example.invalid/simple
            pytest>=7 \\
                ; python_version >= "3.8"
            mock==5.0 --hash=sha256:abcdef
            me[x]
        """),
        "requirements/base.txt": "requests>=2  # inline comment\n",
        "constraints.txt": "urllib3<2\n",
    }
    s = spec(files)
    assert s.requirements == ["attrs", "six", "requests>=2", 'pytest>=7 ; python_version >= "3.8"', "mock==5.0",
                              "pytest-timeout"]
    assert s.constraints == ["urllib3<2"]
    assert any("index" in w for w in s.warnings)
    assert set(s.dependency_digests) >= {"requirements-dev.txt", "requirements/base.txt", "constraints.txt"}


def test_collect_follows_references_from_tox(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py311\n[testenv]\ndeps = -rci/test-reqs.txt\n")
    (tmp_path / "ci" / "test-reqs.txt").write_text("-r ../requirements.txt\nhypothesis\n")
    (tmp_path / "requirements.txt").write_text("attrs\n")
    files = collect_dependency_files(tmp_path)
    assert set(files.files) == {"tox.ini", "ci/test-reqs.txt", "requirements.txt"}
    s = derive_spec(files, PYS)
    assert s.requirements == ["attrs", "hypothesis", "pytest", "pytest-timeout"]
    assert s.python_version == "3.11.7"  # tox envlist when there are no classifiers


# ---- tox.ini


def test_tox_ini_deps_extras_substitution_and_factors():
    files = {
        "setup.cfg": "[metadata]\nname = t\n[options]\ninstall_requires = attrs\n[options.extras_require]\nsocks = PySocks\n",
        "tox.ini": d("""
            [tox]
            envlist = py{38,39,310}-{a,b}
            [base]
            deps = pytest-mock
            [testenv]
            deps =
                pytest<8
                {[base]deps}
                py38: backports.zoneinfo
            extras = socks
            commands = pytest {posargs:tests}
        """),
    }
    s = spec(files)
    assert s.requirements == ["attrs", "PySocks", "pytest<8", "pytest-mock", "pytest-timeout"]
    assert any("factor-conditional" in w for w in s.warnings)
    assert s.declared_test_command == "pytest {posargs:tests}"
    assert s.python_version == "3.10.13"


# ---- overrides, python choice, layout


def test_overrides_python_deps_drop_python_and_command():
    files = {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask<2"]\n[project.optional-dependencies]\ntest = ["pytest-cov", "pytest"]\n'}
    s = spec(files, EnvOverrides(python_deps=["MarkupSafe<2.1"], drop=["pytest-cov"], python="3.10",
                                 test_command="pytest -x tests"))
    assert s.requirements == ["flask<2", "pytest", "MarkupSafe<2.1", "pytest-timeout"]
    assert s.python_version == "3.10.13"
    assert s.test_command == ["pytest", "-x", "tests"]


def test_choose_python_rules():
    assert choose_python(PYS, ">=3.8,<3.12", [], None)[0].version == "3.11.7"
    assert choose_python(PYS, "", [(3, 9)], None)[0].version == "3.8.18"  # newest <= listed 3.9
    assert choose_python(PYS, ">=3.12", [(3, 10)], None)[0].version == "3.12.1"  # all newer than listed: oldest
    with pytest.raises(SpecError):
        choose_python(PYS, ">=3.14", [], None)
    with pytest.raises(SpecError):
        choose_python(PYS, "", [], "3.9")


def test_src_layout_detection():
    s = spec({"pyproject.toml": '[project]\nname = "pkg"\n'}, src_packages=["pkg"], top_level=["src", "tests"])
    assert s.source_roots == ["src"]
    s = spec({"pyproject.toml": '[project]\nname = "pkg"\n'}, top_level=["pkg", "tests"])
    assert s.source_roots == [""]
    s = spec({"pyproject.toml": '[project]\nname = "pkg"\n[tool.setuptools]\npackage-dir = {"" = "lib"}\n'})
    assert s.source_roots == ["lib"]


# ---- the key


BASE = d("""
    [project]
    name = "k"
    version = "1.0"
    dependencies = ["attrs"]
    [dependency-groups]
    test = ["pytest"]
    docs = ["sphinx"]
    [tool.ruff]
    line-length = 100
""")


def test_key_ignores_version_bumps_and_unrelated_config():
    k = spec({"pyproject.toml": BASE}).key
    bumped = BASE.replace('version = "1.0"', 'version = "2.0"').replace("line-length = 100", "line-length = 120")
    assert spec({"pyproject.toml": bumped}).key == k
    assert spec({"pyproject.toml": BASE.replace('docs = ["sphinx"]', 'docs = ["sphinx>7"]')}).key == k  # unused group
    assert spec({"pyproject.toml": BASE}, top_level=["README.md"]).key == k  # the rest of the tree does not matter


def test_key_changes_with_dependencies_python_and_overrides():
    k = spec({"pyproject.toml": BASE}).key
    assert spec({"pyproject.toml": BASE.replace('["attrs"]', '["attrs<23"]')}).key != k
    assert spec({"pyproject.toml": BASE.replace('test = ["pytest"]', 'test = ["pytest<8"]')}).key != k
    assert spec({"pyproject.toml": BASE}, EnvOverrides(python="3.10")).key != k
    assert spec({"pyproject.toml": BASE}, EnvOverrides(python_deps=["six"])).key != k


def test_key_covers_a_setup_py_that_is_not_literal():
    a = "from setuptools import setup\nsetup(name='x', install_requires=deps())\ndef deps(): return ['a']\n"
    b = a.replace("['a']", "['b']")
    assert spec({"setup.py": a}).key != spec({"setup.py": b}).key


@pytest.mark.parametrize("version,specifier,ok", [
    ((3, 10, 13), ">=3.10", True),
    ((3, 9, 18), ">=3.10", False),
    ((3, 10, 13), ">=2.7, !=3.0.*, !=3.1.*", True),
    ((3, 1, 0), ">=2.7, !=3.0.*, !=3.1.*", False),
    ((3, 12, 1), "~=3.8", True),
    ((3, 12, 1), "~=3.8.1", False),
    ((3, 8, 2), "~=3.8.1", True),
    ((3, 13, 0), "<4,>=3.7", True),
    ((3, 11, 7), "==3.11.*", True),
])
def test_version_satisfies(version, specifier, ok):
    assert version_satisfies(version, specifier) is ok


def test_tox_config_inside_setup_cfg():
    s = spec({"setup.cfg": d("""
        [metadata]
        name = t
        [options]
        install_requires = attrs
        [tox:tox]
        envlist = py39
        [testenv]
        deps = pytest-mock
    """)})
    assert s.requirements == ["attrs", "pytest-mock", "pytest", "pytest-timeout"]
    assert s.python_version == "3.8.18"  # newest available not newer than the listed py39
    assert any("setup.cfg [tox:tox]" in src for src in s.sources)
