"""Changes and labelled review sets from what users give: a diff file or a commit range, a set file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum.domain.change import ChangeSpec, LabelledChange, LabelledDefect, ReviewSet
from quorum.workspace.change import range_diff
from quorum.workspace.workspace import WorkspaceError


class ChangeInputError(ValueError):
    """A change or a review set that cannot be used; the message says which and why."""


def _script(path: str | None, base: Path, label: str) -> tuple[str | None, str]:
    if not path:
        return None, ""
    script_path = (base / path).resolve()
    if not script_path.is_file():
        raise ChangeInputError(f"{label}: script {script_path} does not exist")
    return str(script_path), hashlib.sha256(script_path.read_bytes()).hexdigest()


def _split_range(text: str, label: str) -> tuple[str, str]:
    base, sep, head = text.partition("..")
    if not sep or not base or not head or head.startswith("."):
        raise ChangeInputError(f"{label}: a range is BASE..HEAD (two dots), got {text!r}")
    return base, head


def load_change(
    *,
    change_id: str,
    repo: str | Path,
    diff_file: str | Path | None = None,
    commit_range: str | None = None,
    description: str = "",
    script: str | None = None,
    base: Path | None = None,
    label: str = "change",
) -> ChangeSpec:
    """A change from a diff file (applied to the repository's HEAD, or the plain folder) or a range BASE..HEAD."""
    base = base or Path.cwd()
    repo_path = (base / repo).resolve()
    if not repo_path.is_dir():
        raise ChangeInputError(f"{label}: repository {repo_path} does not exist or is not a directory")
    if (diff_file is None) == (commit_range is None):
        raise ChangeInputError(f"{label}: give exactly one of a diff file or a range BASE..HEAD")
    base_commit = None
    if diff_file is not None:
        diff_path = (base / diff_file).resolve()
        if not diff_path.is_file():
            raise ChangeInputError(f"{label}: diff file {diff_path} does not exist")
        diff = diff_path.read_text(encoding="utf-8", errors="surrogateescape")
    else:
        start, end = _split_range(str(commit_range), label)
        try:
            base_commit, diff = range_diff(repo_path, start, end)
        except WorkspaceError as exc:
            raise ChangeInputError(f"{label}: {exc}") from exc
    if not diff.strip():
        raise ChangeInputError(f"{label}: the change is empty (nothing to review)")
    script_path, digest = _script(script, base, label)
    try:
        return ChangeSpec(id=change_id, repo=str(repo_path), base=base_commit, diff=diff, description=description,
                          script=script_path, script_sha256=digest)  # fmt: skip
    except ValidationError as exc:
        raise ChangeInputError(f"{label}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc


class _SetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    repo: str
    diff: str | None = None
    range: str | None = None
    description: str | None = None
    description_file: str | None = None
    script: str | None = None
    defects: list[LabelledDefect] = Field(default_factory=list)


class _Set(BaseModel):
    model_config = ConfigDict(extra="forbid")

    set: str = "review-set"
    window: int = Field(default=3, ge=0)
    changes: list[_SetEntry] = Field(min_length=1)


def load_review_set(path: str | Path) -> ReviewSet:
    """A labelled review set from a YAML file (paths relative to it); every change is checked before anything runs."""
    set_path = Path(path)
    if not set_path.is_file():
        raise ChangeInputError(f"review set {set_path} does not exist")
    try:
        raw = yaml.safe_load(set_path.read_text())
        parsed = _Set.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ChangeInputError(f"review set {set_path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ChangeInputError(f"review set {set_path}: {where}: {err['msg']}") from exc
    base = set_path.resolve().parent
    seen: set[str] = set()
    changes = []
    for entry in parsed.changes:
        label = f"review set {set_path}: change {entry.id!r}"
        if entry.id in seen:
            raise ChangeInputError(f"{label}: duplicate change id")
        seen.add(entry.id)
        description = entry.description or ""
        if entry.description_file:
            description = (base / entry.description_file).read_text().strip()
        change = load_change(
            change_id=entry.id, repo=entry.repo, diff_file=entry.diff, commit_range=entry.range,
            description=description, script=entry.script, base=base, label=label,
        )  # fmt: skip
        changes.append(LabelledChange(**change.model_dump(), defects=entry.defects))
    return ReviewSet(name=parsed.set, source=str(set_path.resolve()), window=parsed.window, changes=changes)
