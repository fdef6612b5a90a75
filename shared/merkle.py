"""SHA-256 Merkle trees over read ids: the audit entry of a group commit holds the root of the ids it stored, and a
read's inclusion proof (the sibling hashes from its leaf to the root) shows it was among them without the others.

The tree is the one `audit.merkle_root` builds in PostgreSQL: leaves sha256(0x00 || id), sorted by id (byte order);
a node sha256(0x01 || left || right); an odd last node goes up unchanged."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Step = tuple[Literal["L", "R"], str]  # the sibling's side and its hash (hex)


def leaf(item: str) -> bytes:
    return hashlib.sha256(b"\x00" + item.encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(items: list[str]) -> list[list[bytes]]:
    level = [leaf(i) for i in sorted(items, key=str.encode)]
    levels = [level]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def root(items: list[str]) -> str:
    if not items:
        raise ValueError("no items: an empty set has no root")
    return _levels(items)[-1][0].hex()


def proof(items: list[str], item: str) -> list[Step]:
    """The path from `item`'s leaf to the root; ValueError when `item` is not among `items`."""
    ordered = sorted(items, key=str.encode)
    if item not in ordered:
        raise ValueError(f"{item} is not among the items")
    index = ordered.index(item)
    steps: list[Step] = []
    for level in _levels(items)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            steps.append(("L" if sibling < index else "R", level[sibling].hex()))
        index //= 2
    return steps


def verify(item: str, steps: list[Step], expected_root: str) -> bool:
    h = leaf(item)
    for side, sibling in steps:
        h = _node(bytes.fromhex(sibling), h) if side == "L" else _node(h, bytes.fromhex(sibling))
    return h.hex() == expected_root


# The entries naming the read first, through the GIN index on `reads.store` entries' ids (a plain ORDER BY seq LIMIT 1
# lets the planner walk the whole log by seq instead, tens of milliseconds per 20,000 entries); there is normally one.
PROOF_SQL = (
    "WITH named AS MATERIALIZED (SELECT seq, hash, agency, object_ids, details FROM audit.audit_log "
    "WHERE action = 'reads.store' AND object_ids @> ARRAY[CAST(:id AS TEXT)]) "
    "SELECT seq, hash, agency, object_ids, details->>'merkle_root' AS merkle_root FROM named ORDER BY seq LIMIT 1"
)


async def read_inclusion_proof(conn: AsyncConnection | AsyncSession, read_id: str) -> dict[str, Any] | None:
    """The audit entry that recorded `read_id` as stored, and the read's proof against that entry's root: `None` when
    no entry names it. Check it with `verify(read_id, proof, merkle_root)` and the chain with `alpr audit verify`."""
    row = (await conn.execute(text(PROOF_SQL), {"id": read_id})).one_or_none()
    if row is None:
        return None
    return {
        "seq": row.seq, "entry_hash": row.hash, "agency": row.agency, "merkle_root": row.merkle_root,
        "count": len(row.object_ids), "proof": proof(list(row.object_ids), read_id),
    }  # fmt: skip
