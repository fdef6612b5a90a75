"""Agent tokens: made here, stored as a SHA-256 hash, checked against an in-memory copy of the registry.

Posts must be accepted while PostgreSQL is down, so the token check cannot need it: each process loads the agents
at start and keeps them in memory, re-read on a schedule (every `ingest_agent_registry_refresh_s`, whether or not
posts arrive, so an agent registered elsewhere is known before an outage begins; and at once when an unknown token
arrives), and in a snapshot file beside the spool, read at start when PostgreSQL does not answer. A token is 256
random bits, so an unsalted SHA-256 is enough (no password to guess); the hash found is compared in constant time.

A registration, rotation or change is durable before it is answered: whoever makes it (an ingest process's admin
API, `alpr agents`) writes it to the snapshot, shared by every ingest process, after the commit and before the
answer (`note_agents`). A process that meets an unknown token reads the snapshot first (no PostgreSQL needed), so a
camera registered a moment before an outage is known to every process. Writers take a file lock; each entry carries
when it was noted, so a process writing what it read from PostgreSQL never overwrites a change noted after its read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.ingest.agents.models import Agent
from services.ingest.suspension_models import SUSPENDED_AGENCIES

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "alpra_"  # makes a leaked token recognisable to secret scanners


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AgentInfo:
    id: uuid.UUID
    name: str
    agency: str
    kind: str
    unit: str | None
    lat: float | None
    lon: float | None
    disabled: bool
    token_sha256: str
    suspended: bool = False  # its agency's collection is suspended (13.824 subd. 6(b))
    placed_on: str | None = None  # a fixed reader's current location since (ISO date)

    @classmethod
    def of(cls, agent: Agent) -> AgentInfo:
        return cls(
            id=agent.id,
            name=agent.name,
            agency=agent.agency,
            kind=agent.kind,
            unit=agent.unit,
            lat=agent.lat,
            lon=agent.lon,
            disabled=agent.disabled_at is not None,
            token_sha256=agent.token_sha256,
            placed_on=agent.placed_on.isoformat() if agent.placed_on else None,
        )


SNAPSHOT_NAME = "agents.json"


def snapshot_path(data_dir: Path) -> Path:
    """Where every ingest process and `alpr agents` find the snapshot (beside the spool)."""
    return data_dir / "agent-spool" / SNAPSHOT_NAME


Noted = dict[uuid.UUID, tuple[AgentInfo, float]]  # each agent, and when (Unix time) it was written to the snapshot


@contextmanager
def _locked(snapshot: Path) -> Iterator[None]:
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(snapshot.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read(snapshot: Path) -> Noted:
    try:
        raw = json.loads(snapshot.read_text())
    except (OSError, ValueError):
        return {}
    out: Noted = {}
    for entry in raw.get("agents", []):
        entry = dict(entry)
        noted = float(entry.pop("noted_at", 0.0))
        info = AgentInfo(**{**entry, "id": uuid.UUID(entry["id"])})
        out[info.id] = (info, noted)
    return out


def _write(snapshot: Path, agents: Noted) -> None:
    tmp = snapshot.with_suffix(f".{os.getpid()}.tmp")
    data: dict[str, Any] = {
        "agents": [{**asdict(a), "id": str(a.id), "noted_at": noted} for a, noted in agents.values()]
    }
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())  # durable: the answer that follows promises the token works
    tmp.replace(snapshot)


def note_agents(snapshot: Path, agents: list[AgentInfo]) -> None:
    """A registration, rotation or change, written to the shared snapshot before it is answered. Blocking."""
    with _locked(snapshot):
        current = _read(snapshot)
        now = time.time()
        for agent in agents:
            current[agent.id] = (agent, now)
        _write(snapshot, current)


def _write_database_view(snapshot: Path, agents: list[AgentInfo], read_at: float) -> None:
    """What a process read from PostgreSQL (starting at `read_at`), keeping changes noted after that read began."""
    with _locked(snapshot):
        merged: Noted = {a.id: (a, read_at) for a in agents}
        for agent_id, (agent, noted) in _read(snapshot).items():
            if noted > read_at:
                merged[agent_id] = (agent, noted)
        _write(snapshot, merged)


async def agents_in(session: AsyncSession) -> list[AgentInfo]:
    """Every agent, as the session sees it (after its commit: what `note_agents` writes)."""
    rows = (await session.execute(select(Agent))).scalars().all()
    stopped = {r[0] for r in await session.execute(text(SUSPENDED_AGENCIES))}
    return [dataclasses.replace(AgentInfo.of(a), suspended=a.agency in stopped) for a in rows]


class Registry:
    def __init__(self, engine: AsyncEngine, snapshot: Path, *, refresh_s: float) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self.refresh_s = refresh_s
        self._by_hash: dict[str, AgentInfo] = {}
        self._by_id: dict[uuid.UUID, AgentInfo] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._bg: asyncio.Task[None] | None = None
        self._schedule: asyncio.Task[None] | None = None
        self._snapshot_of: list[AgentInfo] | None = None  # what the snapshot file holds, as this process wrote it
        self._snapshot_mtime: int | None = None  # of the snapshot this process last read

    def _set(self, agents: list[AgentInfo]) -> None:
        self._by_hash = {a.token_sha256: a for a in agents}
        self._by_id = {a.id: a for a in agents}
        self._loaded_at = time.monotonic()

    async def load(self) -> None:
        """At start: PostgreSQL, else the last snapshot."""
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - posts are still accepted with the snapshot's agents
            log.warning("agent_registry_from_snapshot", error=repr(exc))
            self._load_snapshot()

    def start(self) -> None:
        """Re-read the registry every `refresh_s` from now on (changes take effect within that time)."""
        self._schedule = asyncio.create_task(self._scheduled(), name="agent-registry-refresh")

    async def _scheduled(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.refresh_s - (time.monotonic() - self._loaded_at)))
            await self._maybe_refresh(force=False)

    def _load_snapshot(self) -> None:
        self._set([agent for agent, _ in _read(self.snapshot).values()])

    def _snapshot_changed(self) -> bool:
        try:
            mtime = self.snapshot.stat().st_mtime_ns
        except OSError:
            return False
        changed = mtime != self._snapshot_mtime
        self._snapshot_mtime = mtime
        return changed

    def _merge_snapshot(self) -> None:
        """Agents noted in the snapshot by another process (registered, rotated) join what this one knows."""
        noted = {agent_id: agent for agent_id, (agent, _) in _read(self.snapshot).items()}
        self._by_id = {**self._by_id, **noted}
        self._by_hash = {a.token_sha256: a for a in self._by_id.values()}

    async def refresh(self) -> None:
        read_at = time.time()
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(Agent))).all()  # type: ignore[call-overload]
            stopped = {r[0] for r in await conn.execute(text(SUSPENDED_AGENCIES))}
        agents = [
            dataclasses.replace(info, suspended=info.agency in stopped)
            for info in (AgentInfo.of(Agent.model_validate(dict(r._mapping))) for r in rows)
        ]
        self._set(agents)
        if agents != self._snapshot_of:  # rewritten on change only: a refresh every few seconds writes nothing new
            await asyncio.to_thread(_write_database_view, self.snapshot, agents, read_at)
            self._snapshot_of = agents

    async def note(self, session: AsyncSession) -> None:
        """After a commit that registered, rotated or changed an agent, before its answer: every agent as the session
        now sees it, in the shared snapshot and in this process."""
        agents = await agents_in(session)
        await asyncio.to_thread(note_agents, self.snapshot, agents)
        self._set(agents)

    async def _maybe_refresh(self, *, force: bool) -> None:
        # At most one refresh a second however many unknown tokens arrive (a wrong token cannot flood PostgreSQL).
        floor = 1.0 if force else self.refresh_s
        if force:
            # An unknown token may be an agent registered since this process last read the registry (through
            # another worker, a moment ago): it waits for the next refresh, shared by every unknown token, rather
            # than being refused; an agent drops a read that is answered 401.
            await asyncio.sleep(max(0.0, floor - (time.monotonic() - self._loaded_at)))
        elif time.monotonic() - self._loaded_at < floor:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at < floor:
                return  # refreshed while this one waited
            try:
                await asyncio.wait_for(self.refresh(), 2.0)
            except Exception as exc:  # noqa: BLE001 - PostgreSQL down: keep what we have
                self._loaded_at = time.monotonic()
                log.info("agent_registry_refresh_failed", error=repr(exc))

    async def lookup(self, token: str) -> AgentInfo | None:
        if time.monotonic() - self._loaded_at >= self.refresh_s and (self._bg is None or self._bg.done()):
            # In the background: a post never waits on PostgreSQL (which may be down) for a token it knows.
            self._bg = asyncio.create_task(self._maybe_refresh(force=False))
        digest = hash_token(token)
        found = self._by_hash.get(digest)
        if found is None and await asyncio.to_thread(self._snapshot_changed):
            # Registered or rotated through another process a moment ago: in the snapshot, PostgreSQL or not.
            await asyncio.to_thread(self._merge_snapshot)
            found = self._by_hash.get(digest)
        if found is None:
            await self._maybe_refresh(force=True)
            found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found.token_sha256, digest):
            return None
        return found

    def get(self, agent_id: uuid.UUID) -> AgentInfo | None:
        return self._by_id.get(agent_id)

    async def invalidate(self) -> None:
        """This process changed an agent: read the registry again now."""
        async with self._lock:
            try:
                await asyncio.wait_for(self.refresh(), 2.0)
            except Exception as exc:  # noqa: BLE001 - the periodic refresh catches up
                self._loaded_at = 0.0
                log.info("agent_registry_refresh_failed", error=repr(exc))

    async def close(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
        if self._bg is not None:
            await asyncio.gather(self._bg, return_exceptions=True)

    def all(self) -> dict[uuid.UUID, AgentInfo]:
        return dict(self._by_id)
