"""`POST /v1/match/batch` is answered beside FastAPI's router (shared/fastpath.py, issue 18). The same requests get
the same answers from it as from the route: one app has the route removed from its router (so only the fast path
can answer a JSON body), the other has the fast path removed (so only the route can)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.hotlist.main import create_app
from shared.fastpath import BesideTheRouter
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, row
from tests.support.apps import running, without_route

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-12"}


def _without_route(settings: Settings) -> Any:
    return without_route(create_app(settings), "POST", "/v1/match/batch")


def _without_fast_path(settings: Settings) -> Any:
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not BesideTheRouter]
    return app


async def _answers(client: httpx.AsyncClient, tokens: Any, run: str) -> list[tuple[int, Any]]:
    assert (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).status_code == 200
    json_type = {"Content-Type": "application/json"}
    reads = [
        {"read_id": f"{run}-1", "plate": "FP4411", **READ},
        {"read_id": f"{run}-2", "plate": "ZZ0000", **READ},
        {"read_id": f"{run}-3", "plate": "FP5522", "state": "mn", "alternatives": ["FP4411"], **READ},
    ]
    requests: list[dict[str, Any]] = [
        {"json": {"reads": reads}},  # no token
        {"json": {"reads": reads}, "headers": {"Authorization": "Basic eDp5"}},
        {"json": {"reads": reads}, "headers": {"Authorization": "Bearer not-a-jwt"}},
        {"json": {"reads": reads}, "headers": tokens("officer")},  # not a service
        {"content": b"", "headers": {**tokens("service"), **json_type}},
        {"content": b'{"reads": [', "headers": {**tokens("service"), **json_type}},
        {"content": b"\x00\xff\x7f\xfe%", "headers": {**tokens("service"), **json_type}},  # not UTF-8: 400
        {"content": b'{"reads": ' + b"[" * 5000, "headers": {**tokens("service"), **json_type}},  # too deep: 400
        {"json": {"reads": []}, "headers": tokens("service")},
        {"json": {"reads": [{**reads[0], "plate": 7}, {"read_id": "x"}]}, "headers": tokens("service")},
        {"json": ["not", "an", "object"], "headers": tokens("service")},
        {"json": {"reads": reads}, "headers": tokens("service")},
        {"json": {"reads": reads[1:2]}, "headers": tokens("service")},  # no hit: no session opened
        {"json": {"reads": reads}, "headers": tokens("admin")},  # retried: the hits stored the first time
    ]
    out: list[tuple[int, Any]] = []
    for kwargs in requests:
        resp = await client.post("/v1/match/batch", **kwargs)
        body = resp.json()
        if resp.status_code == 200:
            for result in body["results"]:
                for hit in result["hits"]:
                    hit.pop("hit_id")  # each app stores its own hits, under its own ids
                    hit["read_id"] = hit["read_id"].split("-", 1)[1]
        out.append((resp.status_code, body))
    return out


async def test_the_fast_path_answers_batches_as_the_route_does(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    bca.publish(extract([row("V300000001", "FP4411"), row("W300000002", "FP5522", "MN")]))
    async with running(_without_route(hl_settings)) as fast:
        by_fast_path = await _answers(fast, tokens, uuid.uuid4().hex[:8])
    async with running(_without_fast_path(hl_settings)) as routed:
        by_route = await _answers(routed, tokens, uuid.uuid4().hex[:8])
    statuses = [401, 401, 401, 403, 422, 422, 400, 400, 422, 422, 422, 200, 200, 200]
    assert [status for status, _ in by_fast_path] == statuses
    for i, (fast_answer, route_answer) in enumerate(zip(by_fast_path, by_route, strict=True)):
        assert fast_answer == route_answer, (i, fast_answer, route_answer)
    hits = by_fast_path[11][1]["results"]
    assert [[h["entry_id"] for h in r["hits"]] for r in hits] == [["V300000001"], [], ["W300000002", "V300000001"]]
    assert by_fast_path[13] == by_fast_path[11]


async def test_other_content_types_go_to_the_route(hl_settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    async with running(_without_route(hl_settings)) as fast:
        for headers in ({"Content-Type": "text/plain"}, {}):
            resp = await fast.post("/v1/match/batch", content=b"reads=1", headers={**tokens("service"), **headers})
            # The router's answer, not the fast path's.
            assert resp.json() == {"detail": "route removed by the test"}, resp.text
