"""Prefect Block types for server-side configuration: the model roster and the artifact store.

Register them with a Prefect server once (and again after a quorum upgrade):

    prefect block register -m quorum.blocks

Flows take `roster="block:<name>"` and `store_url="block:<name>"` (see `quorum.blocks.refs`), so a change
made to a block in the UI applies to the next flow run without a redeploy.
"""

from quorum.blocks.refs import BLOCK_PREFIX, BlockRef, BlockRefError, open_store_ref, parse_block_ref, resolve_roster
from quorum.blocks.roster import QuorumRoster
from quorum.blocks.store import QuorumArtifactStore

__all__ = [
    "BLOCK_PREFIX",
    "BlockRef",
    "BlockRefError",
    "QuorumArtifactStore",
    "QuorumRoster",
    "open_store_ref",
    "parse_block_ref",
    "resolve_roster",
]
