"""The ingest service: officer shifts and plate reads from the squad cars."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from services.ingest import retention
from services.ingest.agents.backlog import agent_backlog
from services.ingest.agents.fastpath import agent_post_beside_the_router
from services.ingest.agents.intake import AgentIntake
from services.ingest.agents.quarantine import router as quarantine_router
from services.ingest.agents.routes import router as agents_router
from services.ingest.batching import match_batcher, protected_batcher
from services.ingest.clients import HotlistClient, RecognitionClient, TokenSource
from services.ingest.hold_records import router as hold_records_router
from services.ingest.holds import router as holds_router
from services.ingest.inflight import InFlight
from services.ingest.jobs import Worker
from services.ingest.metrics import ingest_backlog
from services.ingest.positions import router as positions_router
from services.ingest.readers import router as readers_router
from services.ingest.routes import read_beside_the_router, router
from services.ingest.service import IngestContext
from services.ingest.stream import StreamHub, close_on_exit_signal
from services.ingest.subject_counts import router as subject_counts_router
from services.ingest.subjects import router as subjects_router
from services.ingest.subjects import safe_at_home_overdue
from services.ingest.suspension import collection_suspended
from services.ingest.suspension import router as suspension_router
from services.ingest.writer import ExistingReads, ReadWriter, batch_engine
from shared.app import create_service_app
from shared.service_auth import ServiceTokenProvider
from shared.settings import Settings, get_settings
from shared.verified_tokens import CachingVerifier


@dataclass(frozen=True)
class Transports:
    """Where ingest's calls go when not over the network: tests pass the real apps' ASGI transports here."""

    recognition: httpx.AsyncBaseTransport | None = None
    hotlist: httpx.AsyncBaseTransport | None = None
    access: httpx.AsyncBaseTransport | None = None
    # Service tokens for those calls; unset: the client-credentials grant at access (ALPR_SERVICE_CLIENT_ID/SECRET).
    tokens: TokenSource | None = None


def create_app(
    settings: Settings | None = None,
    *,
    transports: Transports | None = None,
    run_worker: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    transports = transports or Transports()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tokens: TokenSource | None = transports.tokens
        if tokens is None and settings.service_client_id and settings.service_client_secret:
            tokens = ServiceTokenProvider(
                settings.url_of("access"),
                settings.service_client_id,
                settings.service_client_secret.get_secret_value(),
                transport=transports.access,
            )
        recognition = (
            RecognitionClient(
                settings.url_of("recognition"),
                timeout_s=settings.ingest_recognition_timeout_s,
                tokens=tokens,
                transport=transports.recognition,
            )
            if settings.ingest_call_recognition
            else None
        )
        hotlist = (
            HotlistClient(
                settings.url_of("hotlist"),
                timeout_s=settings.ingest_hotlist_timeout_s,
                tokens=tokens,
                transport=transports.hotlist,
            )
            if settings.ingest_call_hotlist
            else None
        )
        batches = batch_engine(settings)
        # The group commit's own connections (one flusher; partitions and a racing retry's lookup beside it).
        commits = batch_engine(settings, pool_size=2, custom_plans=False)
        inflight = InFlight()
        linger = {"inflight": inflight, "linger_s": settings.ingest_batch_linger_ms / 1000}
        writer = ReadWriter(commits, max_batch=settings.ingest_commit_batch_max, **linger)
        ctx = IngestContext(
            settings=settings,
            engine=app.state.engine,
            sessionmaker=app.state.sessionmaker,
            store=app.state.store,
            writer=writer,
            existing=ExistingReads(batches, **linger),
            hub=StreamHub(),
            recognition=recognition,
            hotlist=hotlist,
            protected=protected_batcher(batches, **linger),
            matches=match_batcher(hotlist, **linger) if hotlist is not None else None,
            inflight=inflight,
        )
        batchers = [b for b in (ctx.protected, ctx.matches) if b is not None]
        worker = Worker(ctx)
        app.state.ingest = ctx
        app.state.verifier = CachingVerifier(app.state.verifier)
        app.state.ingest_worker = worker
        writer.start()
        ctx.existing.start()
        for batcher in batchers:
            batcher.start()
        if run_worker:
            worker.start()
        agents = AgentIntake.build(ctx)
        app.state.agents = agents
        # The agents' importer runs here unless a process of its own runs it (python -m services.ingest.agents).
        run_importer = run_worker and not settings.ingest_agent_import_process
        app.state.loops += [worker.health, *([agents.importer.health] if run_importer else [])]
        await agents.start(run_importer=run_importer)
        purge_task = (
            asyncio.create_task(retention.scheduled_purge(app.state.engine, app.state.store, settings))
            if run_worker and settings.retention_purge_scheduled
            else None
        )
        restore_signals = close_on_exit_signal(ctx.hub)
        # What start-up built (the app, its routes and models, the libraries) lives as long as the process: kept out
        # of the cyclic collector's full passes, which walked all of it each time the agents' importer had made
        # enough objects and held the loop 120-190 ms (measured with gc.callbacks under the agents' wrk bench).
        gc.freeze()
        # A full pass after 1,000 generation-1 collections rather than 10: what outlives a few of those here is mostly
        # an import round's data, freed by reference counting when the round ends (longest pass 27-83 -> 4-11 ms).
        gc.set_threshold(700, 10, 1000)
        try:
            yield
        finally:
            restore_signals()
            await agents.stop()
            ctx.hub.close()
            if purge_task is not None:
                purge_task.cancel()
                await asyncio.gather(purge_task, return_exceptions=True)
            await worker.stop()
            await writer.stop()
            await ctx.existing.stop()
            for batcher in batchers:
                await batcher.stop()
            await batches.dispose()
            await commits.dispose()
            for client in (recognition, hotlist):
                if client is not None:
                    await client.close()

    return create_service_app(
        "ingest",
        settings,
        routers=[
            router,
            agents_router,
            quarantine_router,
            hold_records_router,
            holds_router,
            subjects_router,
            subject_counts_router,
            readers_router,
            positions_router,
            suspension_router,
        ],
        lifespan=lifespan,
        metric_probes=[ingest_backlog],
        ready_checks=[retention.PurgeReadiness(), agent_backlog, safe_at_home_overdue, collection_suspended],
        description="Officer shifts and plate reads posted by the cars' Mobile Data Computers.",
        beside_the_router=[read_beside_the_router, agent_post_beside_the_router],
    )
