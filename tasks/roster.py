"""Loading and checking the roster inside a run, one task each."""

from __future__ import annotations

from prefect import task

from quorum.blocks.refs import resolve_roster
from quorum.domain.roster import Roster
from quorum.llm.client import check_roster


@task(name="resolve-roster", task_run_name="roster · {ref}")
def resolve_roster_task(ref: str) -> Roster:
    """A shipped roster name, a roster YAML file, or `block:<name>` (a QuorumRoster block on the server)."""
    return resolve_roster(ref)


@task(name="check-roster", task_run_name="check roster · {roster.name}")
def check_roster_task(roster: Roster) -> None:
    """Unknown models and missing API keys stop the run before any call is made."""
    check_roster(roster)
