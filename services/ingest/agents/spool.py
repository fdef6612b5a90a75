"""The local append-only spool: an agent's post is durable on disk (fsync) before it is answered.

`alprd` deletes a read after any HTTP answer and retries only failed connections, so the body must be safe before
we answer, whatever PostgreSQL or the object store are doing. Each process appends to its own segment file
(`<host>-<pid>-<ns>-<n>.open`, held with an exclusive `flock`), so several uvicorn workers never share a file;
concurrent posts share one write and one fdatasync (group commit). A full or old segment is sealed (renamed
`.seg`); a segment left `.open` by a dead process (its lock is free) is sealed by the next writer that starts.

Record: magic, header length, body length, CRC-32 of both, a JSON header (record id, agent id, receive time) and the
raw body exactly as sent. A torn tail (a crash mid-write) fails its CRC or length and is never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MAGIC = b"AS1\n"
_HEAD = struct.Struct(">4sIII")  # magic, header length, body length, crc32
OPEN, SEALED = ".open", ".seg"


@dataclass(frozen=True)
class SpoolRecord:
    segment: str
    end: int  # offset just past this record
    id: uuid.UUID
    agent_id: uuid.UUID
    received_ms: int
    body: bytes


def encode(record_id: uuid.UUID, agent_id: uuid.UUID, received_ms: int, body: bytes) -> bytes:
    header = json.dumps({"id": record_id.hex, "agent": agent_id.hex, "at": received_ms}).encode()
    crc = zlib.crc32(body, zlib.crc32(header))
    return _HEAD.pack(MAGIC, len(header), len(body), crc) + header + body


def decode(segment: str, data: bytes, base: int) -> tuple[list[SpoolRecord], int, bool]:
    """Records in `data` (read from offset `base`); the offset after the last whole record; whether a damaged
    record (not merely an unfinished tail) stopped the walk."""
    out: list[SpoolRecord] = []
    pos = 0
    while pos + _HEAD.size <= len(data):
        magic, hlen, blen, crc = _HEAD.unpack_from(data, pos)
        if magic != MAGIC:
            return out, base + pos, True
        end = pos + _HEAD.size + hlen + blen
        if end > len(data):
            break
        header = data[pos + _HEAD.size : pos + _HEAD.size + hlen]
        body = data[pos + _HEAD.size + hlen : end]
        if zlib.crc32(body, zlib.crc32(header)) != crc:
            return out, base + pos, True
        meta = json.loads(header)
        out.append(
            SpoolRecord(segment, base + end, uuid.UUID(meta["id"]), uuid.UUID(meta["agent"]), int(meta["at"]), body)
        )
        pos = end
    return out, base + pos, False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Pending:
    data: bytes
    future: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SpoolWriter:
    def __init__(self, directory: Path, *, segment_bytes: int, segment_age_s: float) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.appended = 0

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        seal_orphans(self.dir)
        self._task = asyncio.create_task(self._run(), name="agent-spool-writer")

    async def stop(self) -> None:
        if self._task is not None:
            # Queued appends finish first: each is a post waiting for its answer.
            self._stopping = True
            self._wake.set()
            await self._task
        await asyncio.to_thread(self._seal)

    async def append(self, agent_id: uuid.UUID, body: bytes) -> uuid.UUID:
        """Returns once the body is on disk (fdatasync'd)."""
        record_id = uuid.uuid4()
        item = _Pending(encode(record_id, agent_id, int(time.time() * 1000), body))
        self._queue.append(item)
        self._wake.set()
        await item.future
        return record_id

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                if self._stopping:
                    return
                continue
            try:
                await asyncio.to_thread(self._write, b"".join(p.data for p in batch))
            except Exception as exc:  # noqa: BLE001 - the posts are answered 503: the agent's body is not safe
                log.error("agent_spool_write_failed", error=repr(exc), posts=len(batch))
                for p in batch:
                    p.future.set_exception(exc)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._seal)
                continue
            self.appended += len(batch)
            for p in batch:
                if not p.future.done():
                    p.future.set_result(None)
            if self._stopping:
                self._wake.set()  # one more look at the queue, then stop

    def _open(self) -> None:
        self._seq += 1
        name = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}-{self._seq}{OPEN}"
        path = self.dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self.dir)  # the new name itself must survive a crash
        self._fd, self._path, self._size, self._opened = fd, path, 0, time.monotonic()

    def _write(self, data: bytes) -> None:
        if self._fd is not None and (
            self._size >= self.segment_bytes or time.monotonic() - self._opened >= self.segment_age_s
        ):
            self._seal()
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self._size += len(data)

    def _seal(self) -> None:
        if self._fd is None or self._path is None:
            return
        fd, path = self._fd, self._path
        self._fd = self._path = None
        try:
            path.rename(path.with_suffix(SEALED))
            _fsync_dir(self.dir)
        finally:
            os.close(fd)  # releases the lock


def seal_orphans(directory: Path) -> int:
    """Seal `.open` segments whose writer is gone (their lock is free)."""
    sealed = 0
    for path in directory.glob(f"*{OPEN}"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live writer holds it
        try:
            path.rename(path.with_suffix(SEALED))
            sealed += 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    if sealed:
        _fsync_dir(directory)
    return sealed


@dataclass
class SegmentRead:
    name: str
    sealed: bool
    size: int
    records: list[SpoolRecord]
    end: int  # offset after the last whole record read
    damaged: bool


def read_pending(directory: Path, offsets: dict[str, int], *, max_bytes: int) -> list[SegmentRead]:
    """Records not yet imported, oldest segment first, at most about `max_bytes` of them."""
    if not directory.exists():
        return []
    found: list[SegmentRead] = []
    budget = max_bytes
    paths = sorted(directory.glob("*.open")) + sorted(directory.glob("*.seg"))
    for path in sorted(paths, key=lambda p: p.stem):
        if budget <= 0:
            break
        name = path.stem
        start = offsets.get(name, 0)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(start)
                data = fh.read(min(max(size - start, 0), budget))
        except FileNotFoundError:
            continue
        records, end, damaged = decode(name, data, start)
        if not records and end == start and len(data) >= budget:
            # A record bigger than the budget: read it whole.
            with open(path, "rb") as fh:
                fh.seek(start)
                records, end, damaged = decode(name, fh.read(), start)
        budget -= end - start
        found.append(SegmentRead(name, path.suffix == SEALED, size, records, end, damaged))
    return found


def pending_bytes(directory: Path, offsets: dict[str, int]) -> int:
    """Spool bytes not yet imported, from the segments' sizes (nothing read)."""
    if not directory.exists():
        return 0
    total = 0
    for path in [*directory.glob("*.open"), *directory.glob("*.seg")]:
        try:
            total += max(path.stat().st_size - offsets.get(path.stem, 0), 0)
        except FileNotFoundError:
            continue  # imported and deleted meanwhile
    return total


def segment_path(directory: Path, name: str, sealed: bool) -> Path:
    return directory / f"{name}{SEALED if sealed else OPEN}"


def spool_stats(directory: Path) -> dict[str, Any]:
    files = list(directory.glob("*.open")) + list(directory.glob("*.seg")) if directory.exists() else []
    return {"segments": len(files), "bytes": sum(f.stat().st_size for f in files if f.exists())}
