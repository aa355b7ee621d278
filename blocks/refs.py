"""References to configuration as flow parameters: a block on the server, or a name, path or URL.

A deployment parameter `roster="block:nightly"` loads the `QuorumRoster` block named `nightly` each
time a flow run starts, so editing the block in the UI changes the next run without a redeploy.
Anything else keeps its old meaning (a shipped roster name, a roster file, a store URL).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ValidationError

from quorum.domain.roster import Roster, RosterError
from quorum.inputs.rosters import load_roster
from quorum.store import ArtifactStore, open_store

BLOCK_PREFIX = "block:"
_BLOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class BlockRefError(ValueError):
    """A `block:` reference that is malformed or names no saved block."""


class BlockRef(BaseModel):
    """`block:<name>`, parsed."""

    name: str

    def __str__(self) -> str:
        return BLOCK_PREFIX + self.name


def parse_block_ref(ref: str) -> BlockRef | None:
    """`block:<name>` -> BlockRef; anything else -> None; a malformed `block:` ref -> BlockRefError."""
    if not isinstance(ref, str) or not ref.strip().startswith(BLOCK_PREFIX):
        return None
    name = ref.strip()[len(BLOCK_PREFIX) :].strip()
    if not _BLOCK_NAME.match(name):
        raise BlockRefError(
            f"invalid block reference {ref!r}: use 'block:<name>' with a block document name "
            "(letters, digits, '-' and '_')"
        )
    return BlockRef(name=name)


def resolve_roster(ref: str) -> Roster:
    """`block:<name>` -> the QuorumRoster block, validated; else a shipped roster name or a YAML path."""
    block_ref = parse_block_ref(ref)
    if block_ref is None:
        return load_roster(ref)
    from quorum.blocks.roster import QuorumRoster

    block = _load(QuorumRoster, block_ref)
    try:
        return block.to_roster()
    except RosterError as exc:
        raise RosterError(f"{block_ref}: {exc}") from None


def open_store_ref(ref: str) -> ArtifactStore:
    """`block:<name>` -> the QuorumArtifactStore block's store; else a store URL or path (`open_store`)."""
    block_ref = parse_block_ref(ref)
    if block_ref is None:
        return open_store(ref)
    from quorum.blocks.store import QuorumArtifactStore

    return _load(QuorumArtifactStore, block_ref).open()


def _load(block_type: type, block_ref: BlockRef):
    kind = block_type.get_block_type_name()
    try:
        return block_type.load(block_ref.name)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise BlockRefError(f"{block_ref}: cannot load the {kind} block: {exc}") from exc
        raise BlockRefError(
            f"{block_ref}: no {kind} block named {block_ref.name!r} on the Prefect server "
            f"(create one in the UI, or save one with {block_type.__name__}(...).save({block_ref.name!r}))"
        ) from None
    except RuntimeError as exc:  # the saved document fails this block class's validation
        cause = exc.__cause__
        detail = cause.errors()[0]["msg"] if isinstance(cause, ValidationError) else str(exc)
        raise BlockRefError(f"{block_ref}: the saved {kind} block is not valid: {detail}") from exc
