"""quorum.verify.semgrep: the shipped rules, the verdict logic, and real offline semgrep runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from quorum.domain.models import Severity, VerificationStatus
from quorum.verify.semgrep import DEFAULT_RULES, find_semgrep, parse_semgrep_json, rule_id, run_semgrep

needs_semgrep = pytest.mark.skipif(find_semgrep()[0] is None, reason="semgrep binary not found")

# rule id -> (positive sample, negative sample). Every shipped rule must appear here.
SAMPLES: dict[str, tuple[str, str]] = {
    "quorum.python.subprocess-shell-true": (
        "import subprocess\n\ndef run(cmd):\n    return subprocess.run(cmd, shell=True)\n",
        "import subprocess\n\ndef run(cmd):\n    subprocess.run(['ls', cmd])\n    subprocess.run('ls -l', shell=True)\n"
        "    return subprocess.run(cmd, shell=False)\n",
    ),
    "quorum.python.os-system-shell": (
        "import os\n\ndef run(name):\n    os.system('rm ' + name)\n    return os.popen(name).read()\n",
        "import os\n\ndef run():\n    os.system('true')\n    return os.path.join('a', 'b')\n",
    ),
    "quorum.python.eval-exec": (
        "def calc(expr):\n    return eval(expr)\n\ndef run(code):\n    exec(code)\n",
        "import ast\n\ndef calc(expr, model):\n    model.eval()\n    return ast.literal_eval(expr)\n",
    ),
    "quorum.python.unsafe-deserialization": (
        "import pickle, marshal\n\ndef load(data):\n    return pickle.loads(data), marshal.loads(data)\n",
        "import json\n\ndef load(data):\n    return json.loads(data)\n",
    ),
    "quorum.python.yaml-unsafe-load": (
        "import yaml\n\ndef load(text):\n    return yaml.load(text, Loader=yaml.Loader)\n\n"
        "def load2(text):\n    return yaml.unsafe_load(text)\n",
        "import yaml\n\ndef load(text):\n    return yaml.safe_load(text), yaml.load(text, Loader=yaml.SafeLoader)\n",
    ),
    "quorum.python.tls-verification-disabled": (
        "import requests, ssl\n\ndef get(url):\n    ctx = ssl._create_unverified_context()\n"
        "    return requests.get(url, verify=False)\n",
        "import requests, ssl\n\ndef get(url):\n    ctx = ssl.create_default_context()\n"
        "    return requests.get(url, timeout=10)\n",
    ),
    "quorum.python.hardcoded-secret": (
        "password = 'hunter2hunter2'\nAPI_KEY = \"sk-1234567890abcdef\"\n\n"
        "def connect(db):\n    return db.connect(user='app', secret_token='abcdef123456')\n",
        "import os\npassword = os.environ['PASSWORD']\napi_key = ''\npassword_prompt = 'Enter your password:'\n"
        "token_type = 'bearer-token'\n",
    ),
    "quorum.python.sql-string-building": (
        "def find(cur, name):\n    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n\n"
        "def find2(cur, name):\n    q = f\"SELECT * FROM users WHERE name = '{name}'\"\n    cur.execute(q)\n\n"
        "def find3(cur, name):\n    cur.execute('SELECT * FROM t WHERE n = ' + name)\n",
        "import logging\n\ndef find(cur, name):\n    logging.info('looking up %s' % name)\n"
        "    cur.execute('SELECT * FROM users WHERE name = ?', (name,))\n",
    ),
    "quorum.python.tempfile-mktemp": (
        "import tempfile\n\ndef scratch():\n    return tempfile.mktemp()\n",
        "import tempfile\n\ndef scratch():\n    return tempfile.mkstemp()\n",
    ),
    "quorum.python.weak-hash": (
        "import hashlib\n\ndef digest(pw):\n    return hashlib.md5(pw).hexdigest(), hashlib.sha1(pw).hexdigest()\n",
        "import hashlib\n\ndef digest(data):\n    return hashlib.sha256(data).hexdigest(), "
        "hashlib.md5(data, usedforsecurity=False).hexdigest()\n",
    ),
}


def sample_name(rule: str, kind: str) -> str:
    return f"{kind}_{rule.rsplit('.', 1)[-1].replace('-', '_')}.py"


# ---------- the rules file ----------


def shipped_rules() -> list[dict]:
    return yaml.safe_load(DEFAULT_RULES.read_text())["rules"]


def test_every_rule_is_prefixed_versioned_and_sampled() -> None:
    rules = shipped_rules()
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("quorum.") for i in ids)
    assert all(r["metadata"]["quorum-rules-version"] for r in rules)
    assert all(r["severity"] in ("ERROR", "WARNING", "INFO") for r in rules)
    assert set(ids) == set(SAMPLES), "every shipped rule needs a positive and a negative sample"


@pytest.fixture(scope="module")
def rules_scan(tmp_path_factory: pytest.TempPathFactory):
    ws = tmp_path_factory.mktemp("rules")
    files = []
    for rule, (pos, neg) in SAMPLES.items():
        for kind, code in (("pos", pos), ("neg", neg)):
            name = sample_name(rule, kind)
            (ws / name).write_text(code)
            files.append(name)
    return run_semgrep(ws, files, None)


@needs_semgrep
@pytest.mark.parametrize("rule", sorted(SAMPLES))
def test_rule_fires_on_positive_not_on_negative(rules_scan, rule: str) -> None:
    hits = {f.file for f in rules_scan.findings if f.rule == rule}
    assert sample_name(rule, "pos") in hits
    assert sample_name(rule, "neg") not in hits


@needs_semgrep
def test_rules_scan_report_shape(rules_scan) -> None:
    report = rules_scan
    assert report.tool == "semgrep"
    assert report.status == VerificationStatus.failed  # added_lines=None: everything counts as the patch
    assert report.tool_version.startswith("semgrep 1.")
    assert report.raw_name == "semgrep.json"
    assert json.loads(report.raw)["errors"] == []
    assert report.duration_s > 0
    # No finding at all in any negative sample, whatever the rule.
    assert not [f for f in report.findings if f.file.startswith("neg_")]
    weak = [f for f in report.findings if f.rule == "quorum.python.weak-hash"]
    assert weak and all(f.severity == Severity.low for f in weak)


# ---------- real runs: verdicts ----------

PATCHED = """\
import hashlib

def handler(expr):
    value = eval(expr)  # nosemgrep
    return hashlib.md5(value).hexdigest()

def old(expr):
    return eval(expr)
"""


@needs_semgrep
def test_in_patch_logic_and_nosemgrep_ignored(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(PATCHED)
    report = run_semgrep(tmp_path, ["app.py", "deleted.py"], {"app.py": [3, 4, 5]})
    by_line = {(f.line, f.rule): f for f in report.findings}
    assert by_line[(4, "quorum.python.eval-exec")].in_patch is True  # `# nosemgrep` does not hide it
    assert by_line[(8, "quorum.python.eval-exec")].in_patch is False  # pre-existing
    assert by_line[(5, "quorum.python.weak-hash")].in_patch is True
    assert report.status == VerificationStatus.failed
    assert "deleted.py" in report.summary

    # Same output, a patch that only added the md5 line: low + pre-existing findings do not block.
    status, findings, summary = parse_semgrep_json(report.raw, {"app.py": [5]})
    assert status == VerificationStatus.passed
    assert len(findings) == 3
    assert "0 blocking" in summary


@needs_semgrep
def test_syntax_error_file_is_not_passed(tmp_path: Path) -> None:
    # Semgrep only parses (and reports) a broken file when a rule's prefilter matches its text,
    # hence the eval/subprocess in it. The matches in the unparsed region are lost.
    (tmp_path / "broken.py").write_text(
        "import subprocess\ndef f(:\n  x = = 3\n  )))\nclass\neval(y)\nsubprocess.call(x, shell=True)\n"
    )
    report = run_semgrep(tmp_path, ["broken.py"], {"broken.py": list(range(1, 8))})
    assert report.status == VerificationStatus.incomplete
    assert "Syntax error" in report.summary
    assert json.loads(report.raw)["errors"]


def test_no_files_is_passed_without_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUORUM_SEMGREP", "/nonexistent/semgrep")
    report = run_semgrep(tmp_path, [], {})
    assert report.status == VerificationStatus.passed
    assert report.summary == "no Python files changed"


def test_missing_binary_is_error_naming_what_was_looked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setenv("QUORUM_SEMGREP", "/nonexistent/semgrep")
    report = run_semgrep(tmp_path, ["a.py"], {"a.py": [1]})
    assert report.status == VerificationStatus.error
    assert "/nonexistent/semgrep" in report.summary


def test_missing_rules_file_is_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setenv("QUORUM_SEMGREP", "/bin/true")  # a binary that exists; never reached
    report = run_semgrep(tmp_path, ["a.py"], None, rules=tmp_path / "nope.yml")
    assert report.status == VerificationStatus.error
    assert "nope.yml" in report.summary


# ---------- the pure parser on captured output ----------

# Captured from semgrep 1.185 on a file with a syntax error (trimmed to the fields we read).
CAPTURED_PARTIAL_PARSE = json.dumps(
    {
        "version": "1.185.0",
        "results": [],
        "errors": [
            {
                "code": 3,
                "level": "warn",
                "type": ["PartialParsing", [{"path": "bad3.py", "start": {"line": 4, "col": 3, "offset": 0}}]],
                "message": "Syntax error at line bad3.py:4:\n `)))` was unexpected",
                "path": "bad3.py",
            }
        ],
        "paths": {"scanned": ["bad3.py"]},
    }
)


def captured_result(check_id: str, path: str, line: int, severity: str) -> dict:
    return {
        "check_id": check_id,
        "path": path,
        "start": {"line": line, "col": 5, "offset": 36},
        "end": {"line": line, "col": 35, "offset": 66},
        "extra": {"message": "subprocess call\n  with shell=True", "metadata": {}, "severity": severity,
                  "fingerprint": "requires login", "lines": "requires login", "engine_kind": "OSS"},
    }


def test_parse_errors_array_means_incomplete() -> None:
    status, findings, summary = parse_semgrep_json(CAPTURED_PARTIAL_PARSE, {"bad3.py": [1, 2, 3, 4]})
    assert status == VerificationStatus.incomplete
    assert findings == []
    assert "PartialParsing" in summary and "bad3.py" in summary


def test_parse_severity_map_prefix_strip_and_in_patch() -> None:
    text = json.dumps(
        {
            "results": [
                captured_result(
                    "work.main.tasks.rules.semgrep.quorum.python.subprocess-shell-true", "./a.py", 3, "ERROR"
                ),
                captured_result("quorum.python.tempfile-mktemp", "a.py", 9, "WARNING"),
                captured_result("quorum.python.weak-hash", "b.py", 2, "INFO"),
            ],
            "errors": [],
            "paths": {"scanned": ["a.py", "b.py"]},
        }
    )
    status, findings, summary = parse_semgrep_json(text, {"a.py": [9], "b.py": [2]}, expected_files=["a.py", "b.py"])
    got = {(f.file, f.line): (f.rule, f.severity, f.in_patch) for f in findings}
    assert got[("a.py", 3)] == ("quorum.python.subprocess-shell-true", Severity.high, False)
    assert got[("a.py", 9)] == ("quorum.python.tempfile-mktemp", Severity.medium, True)
    assert got[("b.py", 2)] == ("quorum.python.weak-hash", Severity.low, True)
    assert status == VerificationStatus.failed  # the medium finding on an added line
    assert all(f.source == "semgrep" for f in findings)
    assert findings[0].message == "subprocess call with shell=True"


def test_parse_only_preexisting_or_low_is_passed() -> None:
    text = json.dumps(
        {
            "results": [
                captured_result("quorum.python.eval-exec", "a.py", 3, "ERROR"),
                captured_result("quorum.python.weak-hash", "a.py", 4, "INFO"),
            ],
            "errors": [],
            "paths": {"scanned": ["a.py"]},
        }
    )
    status, findings, _ = parse_semgrep_json(text, {"a.py": [4]})
    assert status == VerificationStatus.passed
    assert len(findings) == 2


def test_parse_unscanned_expected_file_is_incomplete() -> None:
    text = json.dumps({"results": [], "errors": [], "paths": {"scanned": ["a.py"]}})
    status, _, summary = parse_semgrep_json(text, None, expected_files=["a.py", "big.py"])
    assert status == VerificationStatus.incomplete
    assert "big.py" in summary


def test_parse_not_json_is_error() -> None:
    status, findings, _ = parse_semgrep_json("Traceback (most recent call last): ...", None)
    assert status == VerificationStatus.error and findings == []


def test_rule_id_strip() -> None:
    assert rule_id("home.x.quorum.tasks.rules.semgrep.quorum.python.eval-exec") == "quorum.python.eval-exec"
    assert rule_id("quorum.python.eval-exec") == "quorum.python.eval-exec"
    assert rule_id("other.rule") == "other.rule"


@needs_semgrep
def test_broken_file_semgrep_never_parses_is_incomplete_and_named(tmp_path: Path) -> None:
    # Nothing here matches any rule's prefilter, so semgrep skips parsing it and reports no error:
    # the ast.parse pre-check is what keeps this from passing as clean.
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def f(:\n    return 1\n")
    report = run_semgrep(tmp_path, ["ok.py", "broken.py"], {"broken.py": [1, 2], "ok.py": [1]})
    assert json.loads(report.raw)["errors"] == []  # semgrep itself says nothing
    assert (report.status, report.reason) == (VerificationStatus.incomplete, "unparseable_files")
    assert "broken.py:1" in report.summary and "ok.py:" not in report.summary


PATHOLOGICAL_RULE = """
rules:
  - id: quorum.test.pathological
    languages: [python]
    severity: WARNING
    message: pathological
    pattern: |
      $A = f(...)
      ...
      $B = f(...)
      ...
      $C = f(...)
      ...
      $D = $F($A, $B, $C, 0)
"""


@needs_semgrep
def test_rule_timeout_makes_the_scan_incomplete(tmp_path: Path) -> None:
    rules = tmp_path / "slow.yml"
    rules.write_text(PATHOLOGICAL_RULE)
    ws = tmp_path / "ws"
    ws.mkdir()
    body = "\n".join(f"    x{i} = f(x{i - 1}, {i})" for i in range(1, 4000))
    (ws / "slow.py").write_text(f"def g(x0):\n{body}\n    return x0\n")
    report = run_semgrep(ws, ["slow.py"], None, rules=rules, rule_timeout_s=1, timeout_threshold=1)
    errors = json.loads(report.raw)["errors"]
    assert [e["type"] for e in errors] == ["Timeout"]
    assert (report.status, report.reason) == (VerificationStatus.incomplete, "scan_errors")
    assert "Timeout" in report.summary and "slow.py" in report.summary
