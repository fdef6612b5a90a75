"""`python -m services.ingest.agents`: the camera agents' importer in a process of its own (issue 18).

In ingest's workers an import round (parsing, Safe at Home checks, the match call, the inserts) held the event loop
that answers the agents: at 2,000 posts/s their p95 was 18-25 ms, and 2 ms with no import running. In a process of
its own the import is scheduled by the kernel, which runs a worker woken by a post ahead of it. `alpr up` starts it
and sets `ALPR_INGEST_AGENT_IMPORT_PROCESS=true` for ingest, whose workers then only accept; it reads the same
settings and spool folder as ingest. It also runs ingest's background work (pending recognition and matches, the
scheduled purge), which its workers run too and which takes turns through PostgreSQL locks."""

from __future__ import annotations

import asyncio
import signal

import uvloop

from services.ingest.main import create_app
from shared.settings import Settings, get_settings


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """ingest's start-up and shutdown without its HTTP server, importing, until `stop` is set."""
    app = create_app(settings.model_copy(update={"ingest_agent_import_process": False}))
    async with app.router.lifespan_context(app):
        await stop.wait()


def main() -> None:
    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # signal.signal, not loop.add_signal_handler: ingest's start-up chains its own handler to this one.
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        await run(get_settings(), stop)

    uvloop.run(until_signalled())


if __name__ == "__main__":
    main()
