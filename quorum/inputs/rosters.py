"""Rosters from where users keep them: a shipped name (`scripted`, `default`) or a YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from quorum.domain.roster import Roster, RosterError, validation_summary

ROSTER_DIR = Path(__file__).resolve().parents[1] / "rosters"


def load_roster(name_or_path: str | Path) -> Roster:
    """Load a shipped roster by name ('scripted', 'default') or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = ROSTER_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in ROSTER_DIR.glob("*.yaml")))
            raise RosterError(f"unknown roster {str(name_or_path)!r}: not a file and not one of: {shipped}")
    if not path.is_file():
        raise RosterError(f"roster file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RosterError(f"roster file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RosterError(f"roster file {path} must be a mapping with planner, implementer and reviewers")
    data.setdefault("name", path.stem)
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        raise RosterError(f"roster {path}: {validation_summary(exc)}") from exc
