"""What the agent routes and the importer share, built in ingest's lifespan; and the access-log scrubber."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from services.ingest.agents.importer import AgentImporter
from services.ingest.agents.registry import Registry, snapshot_path
from services.ingest.agents.spool import SpoolWriter
from services.ingest.service import IngestContext
from shared.settings import Settings

_TOKEN_IN_PATH = re.compile(r"(/v1/agents/openalpr/)[^\s?\"']+")
_TOKEN_IN_QUERY = re.compile(r"((?:\?|&)token=)[^\s&\"']+")


def scrub_token(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1***", _TOKEN_IN_PATH.sub(r"\1***", text))


class TokenScrubber(logging.Filter):
    """Agents' tokens travel in the URL: uvicorn's access log (and any log line quoting a path) must not keep them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(scrub_token(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = scrub_token(record.msg)
        return True


def install_log_scrubber() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenScrubber) for f in logger.filters):
            logger.addFilter(TokenScrubber())


@dataclass
class AgentIntake:
    settings: Settings
    spool_dir: Path
    registry: Registry
    writer: SpoolWriter
    importer: AgentImporter

    @classmethod
    def build(cls, ctx: IngestContext) -> AgentIntake:
        settings = ctx.settings
        spool_dir = settings.data_dir / "agent-spool"
        registry = Registry(
            ctx.engine, snapshot_path(settings.data_dir), refresh_s=settings.ingest_agent_registry_refresh_s
        )
        writer = SpoolWriter(
            spool_dir,
            segment_bytes=settings.ingest_agent_segment_bytes,
            segment_age_s=settings.ingest_agent_segment_age_s,
        )
        return cls(settings, spool_dir, registry, writer, AgentImporter(ctx, registry, spool_dir))

    async def start(self, *, run_importer: bool) -> None:
        install_log_scrubber()
        self.writer.start()
        await self.registry.load()
        self.registry.start()
        if run_importer:
            self.importer.start()

    async def stop(self) -> None:
        await self.importer.stop()
        await self.writer.stop()
        await self.registry.close()
