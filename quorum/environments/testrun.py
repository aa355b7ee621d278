"""Run a repository's tests with an environment's interpreter; results per pytest node id.

:func:`plan_tests` is pure: it produces the :class:`Command` (argv, environment, timeout, the
directories it writes and reads, network = loopback only). :func:`parse_junit` is pure: JUnit XML
(xunit1, which carries ``file``) -> outcome per node id. :func:`run_tests` does the I/O with a
replaceable runner, and handles node ids pytest cannot find (pytest refuses the whole run then:
they are reported as ``not_found`` and the rest is run again). :func:`run_scoped` runs the tests
that cover the changed files first, then the rest while the time budget lasts.

How the code under test is importable: the environment holds only dependencies; the command runs
``<env>/bin/python -m pytest`` with the workspace as working directory (``-m`` puts it first on
``sys.path``) and the project's source root (``src`` for a src layout) on ``PYTHONPATH``. Nothing of
quorum's is on the path: the environment is a separate interpreter, the command's environment is
built from scratch (no ``PYTHONPATH`` of ours, ``PYTHONNOUSERSITE``).

pytest options: ``-p no:cacheprovider`` (nothing written to ``.pytest_cache``), ``-p no:randomly``
(deterministic order), ``--continue-on-collection-errors`` (one file that fails to import does not
stop the others; its tests are then missing), ``-o junit_family=xunit1``, ``--junitxml``, ``--rootdir=<workspace>``
(repo-relative node ids), and with pytest-timeout in the environment ``-o timeout=N
-o timeout_method=signal`` (a hanging test fails alone; the run goes on). The repository's own
``addopts`` are kept unless ``addopts`` is given (e.g. ``""`` to clear them).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from quorum.environments.runner import Command, CommandResult, Runner, run_local

Status = Literal["passed", "failed", "error", "skipped", "xfailed"]
_RANK = {"passed": 0, "xfailed": 1, "skipped": 1, "failed": 3, "error": 4}
EXIT_USAGE = 4
EXIT_NO_TESTS = 5


class TestOutcome(BaseModel):
    __test__ = False  # not a pytest test class
    nodeid: str
    status: Status
    message: str = ""
    duration_s: float = 0.0


class TestRunResult(BaseModel):
    """Outcome per node id. Requested ids absent from the report are in ``missing``."""
    __test__ = False  # not a pytest test class

    outcomes: dict[str, TestOutcome] = Field(default_factory=dict)
    requested: list[str] | None = None
    missing: list[str] = Field(default_factory=list, description="Requested, not in the report (crash, timeout).")
    not_found: list[str] = Field(default_factory=list, description="Requested ids pytest could not collect.")
    collection_errors: list[str] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict, description="Requested id -> the id it ran as.")
    via_parent: list[str] = Field(default_factory=list, description="Requested ids reached by running their function.")
    returncode: int = -1
    timed_out: bool = False
    duration_s: float = 0.0
    argv: list[str] = Field(default_factory=list)
    report_found: bool = False
    error: str = ""
    output_tail: str = ""

    def status(self, nodeid: str) -> str:
        """passed/failed/error/skipped/xfailed, or 'missing' / 'not_found'."""
        if nodeid in self.outcomes:
            return self.outcomes[nodeid].status
        if nodeid in self.not_found:
            return "not_found"
        return "missing"

    def ids_with(self, *statuses: str) -> list[str]:
        return sorted(n for n, o in self.outcomes.items() if o.status in statuses)

    @property
    def passed(self) -> list[str]:
        return self.ids_with("passed", "xfailed", "skipped")

    @property
    def failing(self) -> list[str]:
        """Failed or errored, plus requested ids that never reported."""
        return sorted(set(self.ids_with("failed", "error")) | set(self.missing) | set(self.not_found))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            out[o.status] = out.get(o.status, 0) + 1
        if self.missing:
            out["missing"] = len(self.missing)
        if self.not_found:
            out["not_found"] = len(self.not_found)
        return out

    def summary(self) -> str:
        parts = [f"{v} {k}" for k, v in sorted(self.counts().items())]
        head = ", ".join(parts) or "no results"
        if self.timed_out:
            head += " (run timed out)"
        if self.error:
            head += f" [{self.error}]"
        return head


class TestPlan(BaseModel):
    __test__ = False  # not a pytest test class
    command: Command
    junit_path: str
    node_ids: list[str] | None = None


def plan_tests(
    python: str,
    workspace: str | os.PathLike[str],
    *,
    report_dir: str,
    home_dir: str,
    tmp_dir: str,
    node_ids: list[str] | None = None,
    paths: list[str] | None = None,
    source_roots: list[str] | None = None,
    test_command: list[str] | None = None,
    timeout_s: float = 900,
    per_test_timeout_s: float | None = 120,
    addopts: str | None = None,
    extra_args: list[str] | None = None,
    readable: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> TestPlan:
    """The pytest command (pure). ``node_ids`` or ``paths`` select tests (neither: the whole suite as
    configured). ``test_command``: a task's override, e.g. ``['pytest', 'tests', '-k', 'not slow']``;
    a leading ``pytest``/``py.test``/``python -m pytest`` is replaced by the environment's pytest."""
    ws = Path(workspace).resolve()
    junit = str(Path(report_dir) / "junit.xml")
    env_bin = str(Path(python).parent)
    pythonpath = [str(ws / r) if r else str(ws) for r in (source_roots or [""])]
    env = {
        "PATH": f"{env_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home_dir,
        "TMPDIR": tmp_dir,
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "NO_COLOR": "1",
    }
    env.update(extra_env or {})
    ours = ["-p", "no:cacheprovider", "-p", "no:randomly", "-o", "junit_family=xunit1", f"--junitxml={junit}",
            f"--rootdir={ws}", "-q", "-rfE", "--color=no", "--continue-on-collection-errors"]
    if per_test_timeout_s:
        ours += ["-o", f"timeout={int(per_test_timeout_s)}", "-o", "timeout_method=signal"]
    if addopts is not None:
        ours += ["-o", f"addopts={addopts}"]
    head = [python, "-m", "pytest"]
    rest: list[str] = []
    if test_command:
        tc = list(test_command)
        if tc[:1] and os.path.basename(tc[0]) in ("pytest", "py.test"):
            rest = tc[1:]
        elif len(tc) >= 3 and os.path.basename(tc[0]).startswith("python") and tc[1:3] == ["-m", "pytest"]:
            rest = tc[3:]
        else:  # not pytest: run as given with the environment first on PATH; judged by exit code
            head, ours, rest = tc, [], []
    argv = [*head, *ours, *rest, *(extra_args or [])]
    if test_command is None or rest or head[:3] == [python, "-m", "pytest"]:
        argv += list(node_ids or []) + list(paths or [])
    cmd = Command(
        name="pytest", argv=argv, cwd=str(ws), env=env, timeout_s=timeout_s,
        writable=[str(ws), home_dir, tmp_dir, report_dir],
        readable=list(readable or []), network="loopback",
    )
    return TestPlan(command=cmd, junit_path=junit, node_ids=list(node_ids) if node_ids else None)


# --------------------------------------------------------------------------------------------
# parsing (pure)


def _nodeid(classname: str, name: str, file: str | None, exists: Callable[[str], bool] | None) -> str:
    parts = [p for p in classname.split(".") if p] if classname else []
    if file:
        module = re.sub(r"\.py$", "", file).replace("/", ".")
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            rest = classname[len(module) + 1:].split(".")
            return "::".join([file, *rest, name])
    if exists is not None:
        for i in range(len(parts), 0, -1):
            path = "/".join(parts[:i]) + ".py"
            if exists(path):
                return "::".join([path, *parts[i:], name])
    if file:
        return f"{file}::{name}"
    return "::".join([("/".join(parts) + ".py") if parts else "", name])


def parse_junit(xml_text: str, exists: Callable[[str], bool] | None = None) -> tuple[dict[str, TestOutcome], list[str]]:
    """(outcome per node id, collection errors). Several testcases of one id (a test that failed
    and whose teardown errored) keep the worst status."""
    root = ET.fromstring(xml_text)
    outcomes: dict[str, TestOutcome] = {}
    collection_errors: list[str] = []
    for tc in root.iter("testcase"):
        classname = tc.get("classname", "")
        name = tc.get("name", "")
        status: Status = "passed"
        message = ""
        for child in tc:
            tag = child.tag
            if tag == "failure":
                status, message = "failed", child.get("message", "") or (child.text or "")[:500]
            elif tag == "error":
                if child.get("message", "") == "collection failure" or (not classname and status == "passed"):
                    collection_errors.append(name)
                status, message = "error", child.get("message", "") or (child.text or "")[:500]
            elif tag == "skipped" and status == "passed":
                status = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                message = child.get("message", "")
        if name in collection_errors and not classname:
            continue
        nid = _nodeid(classname, name, tc.get("file"), exists)
        try:
            dur = float(tc.get("time", "0") or 0)
        except ValueError:
            dur = 0.0
        prev = outcomes.get(nid)
        if prev is None or _RANK[status] > _RANK[prev.status]:
            outcomes[nid] = TestOutcome(nodeid=nid, status=status, message=message[:2000],
                                        duration_s=dur + (prev.duration_s if prev else 0))
    return outcomes, collection_errors


_NOT_FOUND = re.compile(r"^ERROR: (?:file or directory )?not found: (.+?)\s*$", re.M)


def parse_not_found(output: str, workspace: str, requested: list[str]) -> list[str]:
    """Requested node ids that pytest said it could not find (it then runs nothing)."""
    prefix = str(Path(workspace).resolve()).rstrip("/") + "/"
    said = set()
    for m in _NOT_FOUND.finditer(output):
        said.add(m.group(1).strip().removeprefix(prefix))
    out = []
    for nid in requested:
        if nid in said or any(nid.startswith(s + "::") or nid.startswith(s + "[") for s in said):
            out.append(nid)
            continue
        # "file or directory not found" names the file alone
        if nid.split("::", 1)[0] in said:
            out.append(nid)
    return out


def param_parent(nodeid: str) -> str:
    """``f.py::C::test[x-1]`` -> ``f.py::C::test`` ('' when there is no parametrization)."""
    return nodeid.split("[", 1)[0] if "[" in nodeid else ""


_AUTO_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*?(\d+)")


def alias_param_id(wanted: str, candidates: list[str]) -> str | None:
    """Map an auto-generated parametrize id (``test[url0-auth0]``: argname + index of the parameter
    set) to the id the same parameter set has here (``candidates``: that function's ids, in
    collection order). None unless every part names the same index."""
    if wanted in candidates:
        return wanted
    params = wanted.split("[", 1)[1][:-1] if "[" in wanted and wanted.endswith("]") else None
    if not params:
        return None
    indices = set()
    for part in params.split("-"):
        m = _AUTO_ID.fullmatch(part)
        if not m:
            return None
        indices.add(int(m.group(1)))
    if len(indices) != 1:
        return None
    n = indices.pop()
    return candidates[n] if n < len(candidates) else None


def result_from(
    res: CommandResult, xml_text: str | None, requested: list[str] | None, workspace: str,
    exists: Callable[[str], bool] | None = None,
) -> TestRunResult:
    """Pure: a finished command and its report -> :class:`TestRunResult`."""
    out = TestRunResult(requested=requested, returncode=res.returncode, timed_out=res.timed_out,
                        duration_s=res.duration_s, argv=res.argv,
                        output_tail=(res.stdout + "\n" + res.stderr)[-6000:])
    if res.spawn_error:
        out.error = f"could not start: {res.spawn_error}"
    if xml_text:
        try:
            out.outcomes, out.collection_errors = parse_junit(xml_text, exists)
            out.report_found = True
        except ET.ParseError as exc:
            out.error = f"unreadable junit report: {exc}"
    elif not out.error:
        out.error = "timed out: no report" if res.timed_out else "no junit report"
    if requested:
        out.missing = [n for n in requested if n not in out.outcomes]
    return out


# --------------------------------------------------------------------------------------------
# running (I/O)

JUNIT_MAX_BYTES = 20_000_000


def read_junit(path: Path) -> str | None:
    """The JUnit file a (sandboxed) run wrote, or None: never through a link, only a plain file with
    one link, under a size cap (the run could replace it by a link to a file only we may read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > JUNIT_MAX_BYTES:
            return None
        return f.read(JUNIT_MAX_BYTES + 1).decode("utf-8", errors="replace")


def run_tests(
    python: str,
    workspace: str | os.PathLike[str],
    *,
    node_ids: list[str] | None = None,
    paths: list[str] | None = None,
    source_roots: list[str] | None = None,
    test_command: list[str] | None = None,
    timeout_s: float = 900,
    per_test_timeout_s: float | None = 120,
    addopts: str | None = None,
    extra_args: list[str] | None = None,
    readable: list[str] | None = None,
    runner: Runner = run_local,
    work_dir: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> TestRunResult:
    """Run the selected tests once in ``workspace`` (which the tests may write to)."""
    ws = str(Path(workspace).resolve())
    scratch = Path(tempfile.mkdtemp(prefix="qenv-run-", dir=work_dir))
    try:
        dirs = {n: scratch / n for n in ("home", "tmp", "out")}
        for d in dirs.values():
            d.mkdir()
        started = time.monotonic()
        requested = list(dict.fromkeys(n.replace(WORKSPACE_TOKEN, ws) for n in node_ids)) if node_ids else None
        ids = list(requested) if requested else None
        unfound: list[str] = []  # ids pytest refused (they may still be reached through their function)
        tried_parents: set[str] = set()
        exists = lambda rel: os.path.isfile(os.path.join(ws, rel))  # noqa: E731
        res: CommandResult | None = None
        xml_text: str | None = None
        for _attempt in range(4):
            if ids is not None and not ids:
                break
            plan = plan_tests(
                python, ws, report_dir=str(dirs["out"]), home_dir=str(dirs["home"]), tmp_dir=str(dirs["tmp"]),
                node_ids=ids, paths=paths, source_roots=source_roots, test_command=test_command,
                timeout_s=max(1.0, timeout_s - (time.monotonic() - started)), per_test_timeout_s=per_test_timeout_s,
                addopts=addopts, extra_args=extra_args, readable=readable, extra_env=extra_env,
            )
            junit = Path(plan.junit_path)
            junit.unlink(missing_ok=True)
            res = runner(plan.command)
            xml_text = read_junit(junit)
            if ids and res.returncode == EXIT_USAGE and not res.timed_out:
                nf = parse_not_found(res.stdout + "\n" + res.stderr, ws, ids)
                if nf:
                    # Fall back to the test function: an id pytest cannot address (old pytest splits
                    # on '::' inside [params]; ids that differ between pytest versions) may still run.
                    unfound += [n for n in nf if n not in tried_parents]
                    parents = [param_parent(n) for n in nf if n not in tried_parents]
                    parents = [p for p in dict.fromkeys(parents) if p and p not in tried_parents]
                    tried_parents.update(parents)
                    ids = [n for n in ids if n not in nf] + [p for p in parents if p not in ids]
                    xml_text = None
                    continue
            break
        if res is None:
            res = CommandResult(name="pytest", returncode=EXIT_NO_TESTS)
        out = result_from(res, xml_text, None, ws, exists)
        if ids == [] and not out.report_found:
            out.error = ""
        out.requested = requested
        if requested:
            unfound_set = set(unfound)
            for nid in requested:
                if nid in out.outcomes:
                    if nid in unfound_set:
                        out.via_parent.append(nid)
                    continue
                if nid in unfound_set:
                    alias = alias_param_id(nid, [k for k in out.outcomes if k.startswith(param_parent(nid) + "[")])
                    if alias is not None:
                        out.outcomes[nid] = out.outcomes[alias].model_copy(update={"nodeid": nid})
                        out.aliases[nid] = alias
                    else:
                        out.not_found.append(nid)
                else:
                    out.missing.append(nid)
        out.duration_s = time.monotonic() - started
        return stable_ids(out, ws)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


WORKSPACE_TOKEN = "{workspace}"


def stable_ids(out: TestRunResult, ws: str) -> TestRunResult:
    """Node ids that name the run's own (throwaway) directory -- parametrized with ``__file__``, say --
    get ``{workspace}`` in its place, so the baseline and later runs in other copies agree. Pure."""
    def norm(nid: str) -> str:
        return nid.replace(ws, WORKSPACE_TOKEN)

    return out.model_copy(update=dict(
        outcomes={norm(k): v.model_copy(update={"nodeid": norm(k)}) for k, v in out.outcomes.items()},
        requested=[norm(n) for n in out.requested] if out.requested is not None else None,
        missing=[norm(n) for n in out.missing], not_found=[norm(n) for n in out.not_found],
        via_parent=[norm(n) for n in out.via_parent], aliases={norm(k): norm(v) for k, v in out.aliases.items()},
    ))


class ScopedRunResult(BaseModel):
    result: TestRunResult
    covering_files: list[str]
    ran_files: list[str]
    not_run_files: list[str]
    reasons: dict[str, str] = Field(default_factory=dict)
    budget_s: float
    runs: int = Field(default=0, description="pytest processes: more than one means the suite ran split.")

    def report(self) -> str:
        lines = [f"tests covering the change: {len(self.covering_files)} file(s), run first",
                 f"ran {len(self.ran_files)} test file(s) within {self.budget_s:.0f}s: {self.result.summary()}"]
        if self.not_run_files:
            lines.append(f"NOT run (time budget): {len(self.not_run_files)} file(s): "
                         + ", ".join(self.not_run_files[:20]) + (" ..." if len(self.not_run_files) > 20 else ""))
        return "\n".join(lines)


def run_scoped(
    python: str,
    workspace: str | os.PathLike[str],
    *,
    changed_files: list[str],
    budget_s: float,
    test_files: list[str] | None = None,
    chunk_files: int = 10,
    **kw,
) -> ScopedRunResult:
    """Tests covering ``changed_files`` first, then the other test files in chunks while time lasts."""
    from quorum.environments.scope import find_test_files, order_test_files, read_sources

    ws = Path(workspace).resolve()
    test_files = test_files if test_files is not None else find_test_files(ws)
    order = order_test_files(changed_files, test_files, read_sources(ws, test_files),
                             source_roots=kw.get("source_roots"))
    started = time.monotonic()
    merged = TestRunResult()
    ran: list[str] = []
    runs = 0
    batches = ([order.covering] if order.covering else []) + [
        order.rest[i:i + chunk_files] for i in range(0, len(order.rest), chunk_files)]
    pending = [f for b in batches for f in b]
    for batch in batches:
        remaining = budget_s - (time.monotonic() - started)
        if remaining <= 1:
            break
        res = run_tests(python, ws, paths=batch, timeout_s=remaining, **kw)
        runs += 1
        merged.outcomes.update(res.outcomes)
        merged.collection_errors += res.collection_errors
        merged.argv = res.argv
        if res.timed_out:
            merged.timed_out = True
            merged.error = f"budget ran out during {len(batch)} file(s)"
            break
        ran += batch
    merged.duration_s = time.monotonic() - started
    return ScopedRunResult(result=merged, covering_files=order.covering, ran_files=ran,
                           not_run_files=[f for f in pending if f not in ran], reasons=order.reasons, budget_s=budget_s,
                           runs=runs)  # fmt: skip

