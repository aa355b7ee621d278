"""SWE-bench task instances in, predictions out (pure models + jsonl helpers).

``Instance`` uses SWE-bench's field names. In SWE-bench's published files ``FAIL_TO_PASS`` and
``PASS_TO_PASS`` are JSON *strings* holding a list; elsewhere (and in this corpus) they are lists:
both are accepted. Unknown fields are kept (``snapshot``, ``gold_files``, ...). Environment
additions of a task (``python_deps``, ``python``, ``test_command``) may ride on the instance.

``Prediction`` has exactly the harness's fields; :func:`write_predictions` writes nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quorum.environments.requirements import EnvOverrides


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parsed = json.loads(value)
        if not isinstance(parsed, list):
            raise ValueError("expected a JSON list")
        return [str(v) for v in parsed]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ValueError(f"expected a list or a JSON string, got {type(value).__name__}")


class Instance(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str = ""
    patch: str = ""
    test_patch: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    hints_text: str = ""
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    # quorum's additions (optional)
    python_deps: list[str] = Field(default_factory=list)
    python: str | None = None
    test_command: str | list[str] | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> list[str]:
        return _as_list(v)

    @field_validator("python_deps", mode="before")
    @classmethod
    def _deps(cls, v: Any) -> list[str]:
        return _as_list(v) if not isinstance(v, str) or v.strip().startswith("[") else [v]

    def overrides(self) -> EnvOverrides:
        return EnvOverrides(python_deps=self.python_deps, python=self.python, test_command=self.test_command)

    def to_swebench(self, json_strings: bool = True) -> dict[str, Any]:
        """A dict in SWE-bench's shape (lists as JSON strings, as its datasets have them)."""
        d = self.model_dump()
        for k in ("python_deps", "python", "test_command"):
            if not d.get(k):
                d.pop(k, None)
        if json_strings:
            d["FAIL_TO_PASS"] = json.dumps(self.FAIL_TO_PASS)
            d["PASS_TO_PASS"] = json.dumps(self.PASS_TO_PASS)
        return d


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_id: str
    model_name_or_path: str
    model_patch: str


def load_instances(path: str | os.PathLike[str]) -> list[Instance]:
    """A .jsonl file (one instance a line) or a .json file holding a list."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json") and text.lstrip().startswith("["):
        return [Instance.model_validate(d) for d in json.loads(text)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(Instance.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def dump_instances(path: str | os.PathLike[str], instances: Iterable[Instance], json_strings: bool = False) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for inst in instances:
            f.write(json.dumps(inst.to_swebench(json_strings)) + "\n")


def write_predictions(path: str | os.PathLike[str], predictions: Iterable[Prediction]) -> int:
    """predictions.jsonl with exactly instance_id, model_name_or_path, model_patch; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps({"instance_id": p.instance_id, "model_name_or_path": p.model_name_or_path,
                                "model_patch": p.model_patch}) + "\n")
            n += 1
    return n


def read_predictions(path: str | os.PathLike[str]) -> list[Prediction]:
    return [Prediction.model_validate_json(l) for l in Path(path).read_text().splitlines() if l.strip()]
