"""The audit chain's keyed seals and signed checkpoints: what makes a rewrite by a database insider show.

The plain chain (shared/audit.py) is SHA-256 computed by the database; whoever owns the tables can rewrite entries
and rehash it. So a sealer that holds a key the database never sees (a file beside the token keys) links every entry
into a keyed chain, `mac_n = HMAC(chain_key, mac_{n-1} | hash_n)`, stored in `audit.seals`, and publishes a
checkpoint (entry count, head hash and head mac, signed with a second key derived from the same secret) to the
object store and the log. Verification recomputes both: a rewritten, removed or renumbered entry no longer matches
its seal, and removed seals or a cut tail no longer match the checkpoints kept outside the database.

Every round also overwrites one signed `latest` checkpoint (count and time of the last round). Verify reads it
before sealing: a log that ends before the last published count, or a latest checkpoint gone while the numbered
ones say it was kept, is a cut tail even when the newest numbered checkpoint files were removed with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.audit import ChainReport, verify_chain
from shared.settings import Settings
from shared.storage import ObjectStore

log = structlog.get_logger(__name__)

CHECKPOINT_PREFIX = "audit/checkpoints/"
# Outside the prefix: overwritten every round, so not one of the numbered, write-once checkpoints.
LATEST_KEY = "audit/latest-checkpoint.json"
SEAL_BATCH = 5000


@dataclass(frozen=True)
class AuditKeys:
    chain: bytes
    checkpoint: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> AuditKeys:
        return cls(
            chain=hmac.new(secret, b"alpr audit chain", hashlib.sha256).digest(),
            checkpoint=hmac.new(secret, b"alpr audit checkpoint", hashlib.sha256).digest(),
        )


def key_path(settings: Settings) -> Path:
    return settings.audit_key_file or settings.keys_dir / "audit-chain.key"


def load_keys(settings: Settings, *, create: bool = False) -> AuditKeys:
    """The audit secret from its file (made on first use when `create`, 0600 in a 0700 folder)."""
    path = key_path(settings)
    if not path.is_file():
        if not create:
            raise FileNotFoundError(f"audit key {path} is missing: seals and checkpoints cannot be checked")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return AuditKeys.from_secret(bytes.fromhex(path.read_text().strip()))


def entry_mac(keys: AuditKeys, previous_mac: str, entry_hash: str) -> str:
    return hmac.new(keys.chain, f"{previous_mac}|{entry_hash}".encode(), hashlib.sha256).hexdigest()


def _checkpoint_body(checkpoint: dict[str, Any]) -> bytes:
    body = {k: v for k, v in checkpoint.items() if k != "signature" and not k.startswith("_")}
    return json.dumps(body, sort_keys=True).encode()


def sign_checkpoint(keys: AuditKeys, checkpoint: dict[str, Any]) -> dict[str, Any]:
    signature = hmac.new(keys.checkpoint, _checkpoint_body(checkpoint), hashlib.sha256).hexdigest()
    return {**checkpoint, "signature": signature}


def checkpoint_signed(keys: AuditKeys, checkpoint: dict[str, Any]) -> bool:
    expected = hmac.new(keys.checkpoint, _checkpoint_body(checkpoint), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(checkpoint.get("signature", "")))


async def seal(engine: AsyncEngine, keys: AuditKeys) -> tuple[int, str | None, str | None]:
    """Seal every entry not yet sealed; returns (entries sealed in all, head hash, head mac).

    Never seals past a link that does not hold: a broken entry stays unsealed and `verify` names it."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('audit.seals'))"))
        last = (await conn.execute(text("SELECT seq, mac FROM audit.seals ORDER BY seq DESC LIMIT 1"))).first()
        last_seq, mac = (int(last.seq), str(last.mac)) if last else (0, "")
        head_hash: str | None = None
        if last_seq:
            head_hash = (
                await conn.execute(text("SELECT hash FROM audit.audit_log WHERE seq = :s"), {"s": last_seq})
            ).scalar()
        while True:
            rows = (
                await conn.execute(
                    text(
                        "SELECT seq, prev_hash, hash, audit.entry_hash(a) AS expected FROM audit.audit_log a "
                        "WHERE seq > :s ORDER BY seq LIMIT :n"
                    ),
                    {"s": last_seq, "n": SEAL_BATCH},
                )
            ).all()
            if not rows:
                break
            sealed: list[dict[str, Any]] = []
            broken = False
            for row in rows:
                if row.seq != last_seq + 1 or row.hash != row.expected or (row.prev_hash or None) != head_hash:
                    log.error("audit_chain_broken_not_sealed", seq=row.seq)
                    broken = True
                    break
                mac = entry_mac(keys, mac, row.hash)
                sealed.append({"seq": row.seq, "mac": mac})
                last_seq, head_hash = int(row.seq), str(row.hash)
            if sealed:
                await conn.execute(text("INSERT INTO audit.seals (seq, mac) VALUES (:seq, :mac)"), sealed)
            if broken or len(rows) < SEAL_BATCH:
                break
        return last_seq, head_hash, (mac or None)


async def publish_checkpoint(engine: AsyncEngine, store: ObjectStore, keys: AuditKeys) -> dict[str, Any] | None:
    """Seal, then write a signed checkpoint of the head to the object store and the log (when the head moved)."""
    count, head_hash, head_mac = await seal(engine, keys)
    if not count:
        return None
    now = datetime.now(UTC).isoformat()
    head = {"count": count, "head_hash": head_hash, "head_mac": head_mac, "at": now}
    # The last round's count and time, every round: what a cut tail is measured against (read before sealing).
    # Never over one the chain no longer holds: a cut tail stays evidence until a verify names it.
    if await _latest_still_holds(engine, store):
        await store.put(LATEST_KEY, json.dumps(sign_checkpoint(keys, head)).encode(), "application/json")
    key = f"{CHECKPOINT_PREFIX}{count:012d}.json"
    if await store.exists(key):
        return None
    checkpoint = sign_checkpoint(keys, {**head, "latest_kept": True})
    await store.put(key, json.dumps(checkpoint).encode(), "application/json")
    log.info("audit_checkpoint", **checkpoint)
    return checkpoint


async def load_checkpoints(store: ObjectStore) -> list[dict[str, Any]]:
    found = []
    for key in sorted(await store.list(CHECKPOINT_PREFIX)):
        try:
            found.append({**json.loads(await store.get(key)), "_key": key})
        except ValueError:
            found.append({"_key": key, "count": 0})
    return found


async def _latest_still_holds(engine: AsyncEngine, store: ObjectStore) -> bool:
    previous = await load_latest(store)
    if previous is None:
        return True
    async with engine.connect() as conn:
        mac = (
            await conn.execute(text("SELECT mac FROM audit.seals WHERE seq = :c"), {"c": int(previous["count"] or 0)})
        ).scalar()
    if mac is not None and hmac.compare_digest(str(mac), str(previous.get("head_mac"))):
        return True
    log.error("audit_latest_checkpoint_not_held", count=previous.get("count"), at=previous.get("at"))
    return False


async def load_latest(store: ObjectStore) -> dict[str, Any] | None:
    """The last round's signed checkpoint, or None when there is none (read it before sealing)."""
    if not await store.exists(LATEST_KEY):
        return None
    try:
        return {**json.loads(await store.get(LATEST_KEY)), "_key": LATEST_KEY}
    except ValueError:
        return {"_key": LATEST_KEY, "count": 0}


@dataclass(frozen=True)
class SealedReport:
    chain: ChainReport
    sealed: int
    checkpoints: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


async def verify_sealed(
    conn: AsyncConnection,
    keys: AuditKeys,
    checkpoints: list[dict[str, Any]],
    latest: dict[str, Any] | None = None,
    before: list[dict[str, Any]] | None = None,
) -> SealedReport:
    """The plain chain, the keyed seals and the checkpoints (and `latest`, the last round's, read before this verify
    sealed; `before`, the checkpoints listed then, when there was no latest); the earliest entry where any breaks."""
    chain = await verify_chain(conn)
    breaks: list[tuple[int, str]] = []
    if not chain.ok and chain.first_broken_seq is not None:
        breaks.append((chain.first_broken_seq, chain.reason or "chain broken"))
    rows = (
        await conn.execute(
            text(
                "SELECT coalesce(a.seq, s.seq) AS seq, a.hash, s.mac FROM audit.audit_log a "
                "FULL JOIN audit.seals s ON s.seq = a.seq ORDER BY 1"
            )
        )
    ).all()
    macs: dict[int, str] = {}
    mac, sealed, last_sealed = "", 0, max((int(r.seq) for r in rows if r.mac is not None), default=0)
    for row in rows:
        seq = int(row.seq)
        if row.hash is None:
            breaks.append((seq, "entry is missing: it was sealed, so it was removed"))
            break
        mac = entry_mac(keys, mac, row.hash)
        macs[seq] = mac
        if row.mac is None:
            if seq < last_sealed:
                breaks.append((seq, "entry's seal is missing: seals were removed"))
                break
            continue
        sealed += 1
        if not hmac.compare_digest(mac, row.mac):
            breaks.append((seq, "entry does not match its keyed seal: rewritten, removed or renumbered"))
            break
    log_end = max(macs, default=0)
    kept = [int(cp.get("count") or 0) for cp in before or [] if cp.get("latest_kept") and checkpoint_signed(keys, cp)]
    if latest is None and kept:
        # Rounds that kept a latest checkpoint ran, and it is gone: removed with the tail it counted.
        breaks.append((max(kept), "the last round's checkpoint is gone: the tail after it may have been cut"))
    for cp in [*checkpoints, *([latest] if latest else [])]:
        count = int(cp.get("count") or 0)
        if not checkpoint_signed(keys, cp):
            breaks.append((max(count, 1), f"checkpoint {cp.get('_key')} is not signed by the audit key"))
        elif count not in macs:
            cut = f"the tail was cut: the log ends at entry {log_end}, " if count > log_end else ""
            breaks.append((count, f"{cut}entry {count} of the checkpoint at {cp.get('at')} is missing"))
        elif not hmac.compare_digest(macs[count], str(cp.get("head_mac"))):
            breaks.append((count, f"entries up to {count} differ from the checkpoint at {cp.get('at')}"))
    first = min(breaks, default=None)
    return SealedReport(
        chain=chain,
        sealed=sealed,
        checkpoints=len(checkpoints),
        first_broken_seq=first[0] if first else None,
        reason=first[1] if first else None,
    )
