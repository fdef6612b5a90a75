import httpx
from fastapi import APIRouter, Request

from shared.app import create_service_app
from shared.errors import Conflict
from shared.http import service_client
from shared.logs import REQUEST_ID_HEADER
from shared.settings import Settings
from tests.support.apps import running


def _app(settings: Settings):  # type: ignore[no-untyped-def]
    router = APIRouter()

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.get("/echo")
    async def echo() -> dict[str, str | None]:
        # A call to another service carries the same request id.
        seen: dict[str, str | None] = {}

        def handler(request: httpx.Request) -> httpx.Response:
            seen["rid"] = request.headers.get(REQUEST_ID_HEADER)
            return httpx.Response(200)

        async with service_client("http://other", transport=httpx.MockTransport(handler)) as client:
            await client.get("/x")
        return seen

    @router.post("/body")
    async def body(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.get("/items/{n}")
    async def item(n: int) -> dict[str, int]:
        return {"n": n}

    return create_service_app("ingest", settings, routers=[router])


async def test_one_error_format_and_no_stack_traces(settings: Settings) -> None:
    async with running(_app(settings)) as client:
        assert (await client.get("/conflict")).json() == {"detail": "already there"}
        assert (await client.get("/conflict")).status_code == 409
        missing = await client.get("/nope")
        assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
        bad = await client.get("/items/abc")
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "n"]
        boom = await client.get("/boom")
        assert boom.status_code == 500
        assert boom.json() == {"detail": "internal error"}
        assert "secret internals" not in boom.text


async def test_request_id_is_echoed_and_travels_between_services(settings: Settings) -> None:
    async with running(_app(settings)) as client:
        resp = await client.get("/echo", headers={REQUEST_ID_HEADER: "car-17-read-42"})
        assert resp.headers[REQUEST_ID_HEADER] == "car-17-read-42"
        assert resp.json() == {"rid": "car-17-read-42"}
        fresh = await client.get("/healthz")
        assert len(fresh.headers[REQUEST_ID_HEADER]) == 32


async def test_a_client_gone_before_its_body_is_a_4xx_not_a_server_error(settings: Settings) -> None:
    # What uvicorn hands the app when the connection drops mid-body: the body read raises ClientDisconnect.
    app = _app(settings)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/body",
        "raw_path": b"/body",
        "query_string": b"",
        "headers": [(b"content-length", b"1000"), (b"host", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
    assert b"disconnected" in body
