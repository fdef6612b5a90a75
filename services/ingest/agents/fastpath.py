"""Agents' posts answered beside the router (`shared.fastpath`): the same checks and answers as the routes
in `routes.py`, without FastAPI's routing, dependency solving and per-route middlewares (issue 18: a camera-agent
post cost ~0.7 ms of CPU, most of it the framework around a token lookup and a spool append)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from services.ingest.agents.intake import AgentIntake
from services.ingest.agents.routes import accept
from shared.errors import Unavailable
from shared.fastpath import Handler, route_path

PREFIX = "/v1/agents/openalpr"


def _token(path: str, scope: Scope) -> tuple[bool, str | None]:
    """Whether the request is one of the agents' posts, and the token its URL carries."""
    rest = path[len(PREFIX) :]
    if rest == "":
        # `?token=`: the last one wins, as in the route's query parameter.
        query = scope.get("query_string", b"").decode("latin-1")
        found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"] if query else []
        return True, found[-1] if found else None
    if rest[0] == "/" and len(rest) > 1 and "/" not in rest[1:]:
        return True, rest[1:]
    return False, None  # not ours (a trailing slash...): the router answers it as before


def agent_post_beside_the_router(scope: Scope) -> Handler | None:
    if scope["method"] != "POST" or not (path := route_path(scope)).startswith(PREFIX):
        return None
    ours, token = _token(path, scope)
    if not ours:
        return None

    async def answer(request: Request) -> Response:
        intake: AgentIntake | None = getattr(request.app.state, "agents", None)
        if intake is None:
            raise Unavailable("ingest is starting")
        record_id = await accept(intake, token, request)
        return Response(b'{"accepted":true,"id":"%s"}' % str(record_id).encode(), media_type="application/json")

    return answer
