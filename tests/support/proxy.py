"""A round-robin TCP proxy: one address in front of several instances of a service, as a Kubernetes Service is.

Each new connection goes to the next backend; one that refuses the connection (killed, not yet up) is skipped, as
a Service drops a pod that fails its readiness probe. Bytes are copied both ways until either side closes. It runs
its own event loop in a thread, so sync and async tests use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter


class RoundRobinProxy:
    def __init__(self, backends: list[int], host: str = "127.0.0.1") -> None:
        self.host = host
        self.backends = backends
        self.port = 0
        self.connections: Counter[int] = Counter()  # backend port -> connections sent to it
        self._next = itertools.cycle(range(len(backends)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, 0), self._loop
        ).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
        for _ in range(len(self.backends)):
            port = self.backends[next(self._next)]
            try:
                reader, writer = await asyncio.open_connection(self.host, port)
            except OSError:
                continue  # down: the next one
            self.connections[port] += 1
            return port, reader, writer
        raise ConnectionRefusedError("no backend is up")

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            _, reader, writer = await self._connect()
        except OSError:
            client_writer.close()  # the client sees a closed connection, as with no ready pod
            return
        await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
