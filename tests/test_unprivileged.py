"""quorum as an ordinary user (issue 19): the deployments we ship run it as uid 10001, not root.

The suite runs as root (CI); these tests create an ordinary user (``quorum-ci-user``, idempotent;
tests/support/ordinary_user.py) with an interpreter it can read, and run quorum AS that user, with
model keys planted in its environment:

1. the hostile-input suite (tests/test_hostile.py, including the issue's own attack), the
   prompt-injection example (tests/test_injection.py: the whole scripted batch) and the rootless
   sandbox checks of tests/test_sandbox.py: every test passes, none is skipped, the sandbox mode is
   ``userns``, every hostile verdict equals the root run's (the CASES table), no key reaches any
   stored artifact or output, and no process of the user survives;
2. the same attack with user namespaces made unavailable by a real seccomp filter
   (tests/support/no_userns.py, what Docker's default profile does): verification fails closed with
   ``no_isolation`` and the attack never runs; with ``QUORUM_SANDBOX_ALLOW_UNISOLATED=1`` it runs,
   the report and the UI markdown say ``unisolated`` — and the attack gets the planted key, the
   listener and /tmp, which shows what the sandbox prevents in (1).
"""

from __future__ import annotations

import json
import os
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.ordinary_user import OrdinaryUser, Unavailable, make_session, processes_of, remove_session

from tests.test_hostile import CASES

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates an ordinary user and runs quorum as it: needs root"),
    # Each test runs a pytest session or a whole attack as another user: ~1 min on an idle machine,
    # far more on a shared one; the runs inside have their own deadlines.
    pytest.mark.timeout(1200),
]

NO_USERNS = Path(__file__).parent / "support" / "no_userns.py"
USERNS_SANDBOX_TESTS = [
    "tests/test_sandbox.py::test_userns_confined_identity_namespaces_and_filesystem",
    "tests/test_sandbox.py::test_userns_timeout_kills_setsid_daemon_and_leaves_our_processes_alone",
]


@pytest.fixture(scope="module")
def user():
    try:
        session = make_session()
    except Unavailable as exc:
        pytest.skip(f"no ordinary-user run on this host: {exc}")
    try:
        yield session
    finally:
        remove_session(session)


def user_dir(user: OrdinaryUser, name: str) -> Path:
    path = user.work / name
    path.mkdir()
    os.chown(path, user.uid, user.gid)
    return path


def junit_cases(path: Path) -> dict[str, dict]:
    """test id -> {'outcome': passed|failed|error|skipped, 'properties': {...}, 'message': str}."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, (child.get("message") or "")[:500]
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[f"{case.get('classname')}::{case.get('name')}"] = {
            "outcome": outcome, "properties": properties, "message": message,
        }  # fmt: skip
    return cases


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_hostile_suite_and_injection_example_as_an_ordinary_user(user: OrdinaryUser) -> None:
    planted = {"ANTHROPIC_API_KEY": f"sk-ant-planted-{secrets.token_hex(12)}",
               "OPENAI_API_KEY": f"sk-planted-{secrets.token_hex(12)}"}  # fmt: skip
    readonly_root, basetemp = user_dir(user, "ro"), user.work / "basetemp"
    junit = user.work / "junit.xml"
    env = user.env({**planted, "QUORUM_TEST_READONLY_ROOT": str(readonly_root)})
    argv = [
        user.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
        f"--junitxml={junit}", "-o", "junit_family=xunit1", "tests/test_hostile.py", "tests/test_injection.py",
        *USERNS_SANDBOX_TESTS,
    ]  # fmt: skip
    done = user.run(argv, env=env, timeout_s=900)
    output = done.stdout + done.stderr
    assert junit.exists(), output[-3000:]
    cases = junit_cases(junit)
    not_passed = {name: case for name, case in cases.items() if case["outcome"] != "passed"}
    assert done.returncode == 0 and not not_passed, f"{not_passed}\n{output[-3000:]}"

    hostile = {n: c for n, c in cases.items() if n.startswith("tests.test_hostile::")}
    injection = [n for n in cases if n.startswith("tests.test_injection::")]
    assert len(hostile) >= len(CASES) + 10 and len(injection) >= 10, sorted(cases)
    assert all(n.split("::")[-1] in [c.split("::")[-1] for c in USERNS_SANDBOX_TESTS] for n in cases
               if n.startswith("tests.test_sandbox::"))  # fmt: skip
    assert sum(n.startswith("tests.test_sandbox::") for n in cases) == len(USERNS_SANDBOX_TESTS)
    # The same verdicts as root (the CASES table), in userns mode.
    for case, (_, _, (status, reason, limit)) in CASES.items():
        props = hostile[f"tests.test_hostile::test_sandboxed_run[{case}]"]["properties"]
        assert (props["mode"], props["verdict"]) == ("userns", f"{status}/{reason}/{limit}"), case
    attack = hostile["tests.test_hostile::test_the_issue_19_attack_gets_no_secret_no_network_and_no_file"]["properties"]
    assert attack["mode"] == "userns" and "STOLEN=[]" in attack["attack"] and "network=blocked" in attack["attack"]
    # No key in anything the run stored or printed (store, results, JUnit, output), nothing left running.
    for key in planted.values():
        assert files_containing(user.session, key) == [] and key not in output
    assert processes_of(user.uid) == []
    verdicts = ", ".join(f"{case}={hostile[f'tests.test_hostile::test_sandboxed_run[{case}]']['properties']['verdict']}"
                         for case in CASES)  # fmt: skip
    print(f"\nas {user.name} (uid {user.uid}): {len(cases)} tests passed, mode userns; {verdicts}; attack: {attack['attack']}")


def run_attack_as(user: OrdinaryUser, name: str, extra_env: dict[str, str]) -> dict:
    """The issue's attack as the user, under a seccomp filter that refuses user namespaces."""
    out = user_dir(user, name) / "outcome.json"
    planted = f"sk-ant-planted-{secrets.token_hex(12)}"
    env = user.env({"ANTHROPIC_API_KEY": planted, "QUORUM_TEST_PLANTED": planted, **extra_env})
    done = user.run(
        [user.python, str(NO_USERNS), user.python, "-m", "tests.support.issue19_attack", str(out)], env=env, timeout_s=300
    )
    assert done.returncode == 0 and out.exists(), done.stdout[-2000:] + done.stderr[-3000:]
    outcome = json.loads(out.read_text())
    if outcome["escape_written"]:
        Path(outcome["escape"]).unlink()
    assert processes_of(user.uid) == []
    return outcome


def test_without_user_namespaces_verification_fails_closed_and_the_opt_in_says_unisolated(user: OrdinaryUser) -> None:
    refused = run_attack_as(user, "refused", {})
    report = refused["report"]
    assert (report["status"], report["reason"]) == ("error", "no_isolation"), report["summary"]
    assert report["sandbox"]["mode"] == "none" and report["sandbox"]["refused"] is True
    for words in ("untrusted tests were not run", f"uid {user.uid}, not root", "Operation not permitted",
                  "a seccomp filter is active", "run the worker as root", "kernel.unprivileged_userns_clone=1",
                  "QUORUM_VERIFY_DEPLOYMENT=quorum-verify/sandbox", "QUORUM_SANDBOX_ALLOW_UNISOLATED=1"):  # fmt: skip
        assert words in report["summary"], words
    assert refused["attack_line"] == "" and refused["received"] == [] and not refused["escape_written"]  # never ran
    assert "unisolated" not in refused["markdown"]

    allowed = run_attack_as(user, "allowed", {"QUORUM_SANDBOX_ALLOW_UNISOLATED": "1"})
    report = allowed["report"]
    assert (report["status"], report["reason"]) == ("passed", ""), report["summary"]
    assert report["sandbox"]["mode"] == "none" and report["network_isolated"] is False
    assert "sandbox: unisolated (QUORUM_SANDBOX_ALLOW_UNISOLATED=1)" in report["summary"]
    assert "> **Warning: untrusted tests ran unisolated (pytest)" in allowed["markdown"]
    # Unisolated, the attack works: this is what the sandbox stops in the test above.
    assert f"ANTHROPIC_API_KEY={allowed['planted']}" in allowed["attack_line"], allowed["attack_line"]
    assert "network=sent" in allowed["attack_line"] and any(allowed["planted"] in r for r in allowed["received"])
    assert allowed["escape_written"]
    refused_report = refused["report"]
    print(f"\nno userns: {refused_report['status']}/{refused_report['reason']}; opted in: {report['status']}, "
          f"{allowed['attack_line'][:100]}")  # fmt: skip
