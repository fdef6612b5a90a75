"""A real HTTP server playing the BCA: serves generated extracts, changes them, fails, times out, sends garbage."""

from __future__ import annotations

import asyncio
import gzip
import io
import random
import socket
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

HEADER = "NIC,ORI,ENTRY_DATE,PLATE,STATE,PLATE_YEAR,PLATE_TYPE,VEHICLE_YEAR,MAKE,MODEL,STYLE,COLOR"
CREDENTIAL = "Basic YnVyZWF1OnNlY3JldA=="


def row(nic: str, plate: str, state: str = "MN", *, date: str = "20211122") -> str:
    return f"{nic},MN0271200,{date},{plate},{state},2022,PC,2013,CHEV,AVA,4D,BLK"


def extract(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def generated(count: int, *, prefix: str, seed: int = 1, codes: str = "VPWFDS") -> list[str]:
    """`count` distinct rows; plates are `prefix` + digits (prefix keeps one test's plates apart from another's)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        code = codes[rnd.randrange(len(codes))]
        rows.append(row(f"{code}{seed:03d}{i:06d}", f"{prefix}{i:04d}"))
    return rows


@dataclass
class FakeBca:
    body: bytes = b""
    packing: str = "plain"  # plain | gzip-file | zip | content-encoding
    mode: str = "ok"  # ok | down | timeout | garbage | trickle (half the file, then a byte every 0.2 s)
    etag: str = '"0"'
    last_modified: str = field(default_factory=lambda: formatdate(usegmt=True))
    requests: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    port: int = 0
    tls: tuple[str, str] | None = None  # certificate and key files: serve https
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hotlist/extract"

    def publish(self, body: bytes, packing: str = "plain") -> None:
        """A new file: new validators."""
        self.body, self.packing, self.mode = body, packing, "ok"
        self.etag = f'"{abs(hash(body))}"'
        self.last_modified = formatdate(time.time() + len(self.requests), usegmt=True)

    async def _handle(self, request: Request) -> Response:
        self.requests.append({"url": str(request.url), **dict(request.headers)})
        response = await self._answer(request)
        self.statuses.append(response.status_code)
        return response

    async def _answer(self, request: Request) -> Response:
        if request.headers.get("authorization") != CREDENTIAL:
            return Response("unauthorized", status_code=401)
        if self.mode == "down":
            return Response("maintenance", status_code=503)
        if self.mode == "timeout":
            await asyncio.sleep(3)
            return Response(self.body)
        if self.mode == "trickle":
            body = self.body

            async def trickle() -> AsyncIterator[bytes]:
                yield body[: len(body) // 2]
                for i in range(len(body) // 2, len(body)):
                    await asyncio.sleep(0.2)
                    yield body[i : i + 1]

            return StreamingResponse(trickle(), media_type="text/csv")
        if self.mode == "garbage":
            return Response(random.Random(7).randbytes(5000), media_type="application/octet-stream")
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers={"ETag": self.etag})
        headers = {"ETag": self.etag, "Last-Modified": self.last_modified}
        if self.packing == "gzip-file":
            return Response(gzip.compress(self.body), headers=headers, media_type="application/gzip")
        if self.packing == "zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("hotlist.csv", self.body)
            return Response(buf.getvalue(), headers=headers, media_type="application/zip")
        if self.packing == "content-encoding":
            return Response(gzip.compress(self.body), headers={**headers, "Content-Encoding": "gzip"})
        return Response(self.body, headers=headers, media_type="text/csv")

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/hotlist/extract", self._handle)])
        tls = {"ssl_certfile": self.tls[0], "ssl_keyfile": self.tls[1]} if self.tls else {}
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", **tls)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake BCA did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(10)
