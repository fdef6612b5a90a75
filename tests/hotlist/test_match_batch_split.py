"""Ingest's batched match against a running hotlist: a read hotlist refuses (422) fails alone; the other reads of
the same batch get their answers (issue 18's batching must keep issue 16's "poison alone")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from services.hotlist.main import create_app
from services.ingest.batching import match_batcher
from services.ingest.clients import CallFailed, HotlistClient, match_payload
from shared.settings import Settings
from tests.support.apps import running


class _Tokens:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    async def headers(self) -> dict[str, str]:
        return self._headers

    def invalidate(self) -> None:
        pass


def _read(read_id: str, plate: str) -> dict[str, object]:
    return match_payload(
        read_id=read_id, plate=plate, state="MN", alternatives=[], agency="MN0271200", unit="car-b",
        captured_at=datetime.now(UTC),
    )  # fmt: skip


async def test_a_read_hotlist_refuses_fails_alone_in_its_batch(hl_settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    app = create_app(hl_settings)
    async with running(app):
        client = HotlistClient(
            "http://hotlist", timeout_s=10, tokens=_Tokens(tokens("service")),
            transport=httpx.ASGITransport(app=app),
        )  # fmt: skip
        batcher = match_batcher(client)
        batcher.start()
        try:
            bad = {**_read("r-bad", "ABC123"), "plate": "X" * 40}  # longer than any plate: hotlist answers 422
            answers = await asyncio.gather(
                *(batcher.call(r) for r in (_read("r-1", "GOOD01"), bad, _read("r-2", "GOOD02"))),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()
            await client.client.aclose()
    first, refused, second = answers
    assert isinstance(refused, CallFailed) and refused.status == 422
    assert isinstance(first, dict) and first["hits"] == [] and isinstance(second, dict) and second["hits"] == []
