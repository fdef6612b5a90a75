"""Fuzzing a service over its own OpenAPI with schemathesis: the app runs under uvicorn (in a thread, lifespan and
all), every generated request is sent with the token of a role drawn with it, and each answer is checked: no 5xx,
no status the document does not list, no body that breaks its declared schema."""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.generation.drivers import CoverageGenerator  # the coverage phase's cases, one operation at a time
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# 5xx are checked in `_send`: a 503 (a dependency down: here ingest for access, the BCA list for hotlist) is the
# documented answer that loses nothing; any other 5xx is a finding.
CHECKS = [status_code_conformance, response_schema_conformance, content_type_conformance]
# Server-Sent Events never end: their refusals and their Last-Event-ID are tested on their own.
SKIPPED_SUFFIXES = ("/stream",)
# Headers that frame the HTTP message itself: a random value there makes a request that is not HTTP, and uvicorn
# answers it (400 text/plain) before any app sees it. The client sets them.
FRAMING = frozenset({"content-length", "transfer-encoding", "host", "connection"})


SERVICES = ("access", "ingest", "recognition", "hotlist")


def fuzz_ports(first: int | None) -> dict[str, int]:
    """The four services' ports in a fuzz run: `first` to `first + 3` (`ALPR_FUZZ_PORT`, `make fuzz FUZZ_PORT=...`),
    else free ones. Every URL a fuzzed service calls (hotlist calling ingest, image links to access) uses them, so
    a fuzz never reaches a live system on the default ports 8001-8004 beside it."""
    if first is None:
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket()) for _ in SERVICES]
            for sock in socks:
                sock.bind(("127.0.0.1", 0))
            return {name: sock.getsockname()[1] for name, sock in zip(SERVICES, socks, strict=True)}
    return {name: first + i for i, name in enumerate(SERVICES)}


@contextlib.contextmanager
def serving(app: FastAPI, port: int = 0) -> Iterator[str]:
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"fuzz-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class Report:
    requests: int = 0
    edges: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # one per operation and kind of failure


def fuzz(base_url: str, tokens: dict[str, str], *, seconds: float, examples: int) -> Report:
    """Every operation: first schemathesis' coverage cases (boundaries, huge numbers, missing and wrong values),
    then random positive and negative data; each case with one role's token (or none), until `examples` random
    cases per operation or `seconds` in all have been spent."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if not op.path.endswith(SKIPPED_SUFFIXES)]
    report = Report()
    deadline = time.monotonic() + seconds
    share = seconds / max(1, len(operations))
    roles = sorted(tokens) + [""]  # "" : no token at all
    for op in operations:
        _one(op, report, tokens, roles, examples, min(deadline, time.monotonic() + share * 2))
    return report


def _send(op, case, role: str, tokens: dict[str, str], report: Report) -> int | None:  # type: ignore[no-untyped-def]
    # With no role, the case's own Authorization (if it made one: a wrong token) or none.
    headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
    if case.headers and any(k.lower() in FRAMING for k in case.headers):
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING}
    report.requests += 1
    try:
        response = case.call(headers=headers, timeout=15)
    except Exception as exc:  # noqa: BLE001 - a dropped connection is a finding too
        report.failures.setdefault(f"{op.method.upper()} {op.path} [transport]", repr(exc)[:300])
        return None
    where = f"{op.method.upper()} {op.path}"
    if response.status_code >= 500 and response.status_code != 503:
        report.failures.setdefault(f"{where} [{response.status_code}]", f"{role}: {case.as_curl_command()}")
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (Exception, BaseExceptionGroup) as exc:  # collected, so one run reports every operation's findings
        key = f"{where} [{type(exc).__name__}] {response.status_code}"
        report.failures.setdefault(key, f"{role or 'no token'}: {str(exc)[:600]}")
    return int(response.status_code)


def _coverage(op, report: Report, tokens: dict[str, str], roles: list[str], until: float) -> None:  # type: ignore[no-untyped-def]
    generator = CoverageGenerator(
        operation=op,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=op.schema.config.generation_for(operation=op, phase="coverage"),
        auth_storage=None,
        override=Override(),
        feedback=FeedbackSources(),
    )
    cases = iter(generator)
    first = next(cases, None)
    if first is None:
        return
    # The edges first (the likeliest to find something), with a role this operation lets in.
    allowed = [r for r in roles if _send(op, first, r, tokens, report) not in (401, 403)] or roles
    _edges(op, first, report, tokens, allowed, until)
    for n, case in enumerate([first, *cases]):
        if time.monotonic() > until:
            return
        _send(op, case, roles[n % len(roles)], tokens, report)


# What a store cannot hold and random generation rarely draws: beyond int64, beyond a double's range of times,
# control characters, a date far in the future.
EDGES: tuple[object, ...] = (2**63, -(2**63) - 1, 1e308, "a\x00b", "x\x01\x7f", "2062-01-01T00:00:00Z")


def _edges(op, base, report: Report, tokens: dict[str, str], roles: list[str], until: float) -> None:  # type: ignore[no-untyped-def]
    """Each query or path parameter, and each top-level field of a JSON body, set to each edge value in turn."""
    n = 0
    for where in ("query", "path_parameters", "body"):
        values = getattr(base, where)
        if not isinstance(values, dict):
            continue
        for key in list(values):
            for edge in EDGES:
                if time.monotonic() > until:
                    return
                parts = {w: copy.deepcopy(getattr(base, w)) for w in ("query", "path_parameters", "headers")}
                if isinstance(base.body, dict):
                    parts["body"] = copy.deepcopy(base.body)
                parts[where][key] = edge if where == "body" else str(edge)
                case = op.Case(media_type=base.media_type, **parts)
                n += 1
                report.edges += 1
                _send(op, case, roles[n % len(roles)], tokens, report)


def _one(op, report: Report, tokens: dict[str, str], roles: list[str], examples: int, op_deadline: float) -> None:  # type: ignore[no-untyped-def]
    _coverage(op, report, tokens, roles, time.monotonic() + (op_deadline - time.monotonic()) / 2)
    if True:
        strategy = st.one_of(
            op.as_strategy(generation_mode=GenerationMode.POSITIVE),
            op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @hypothesis.given(case=strategy, role=st.sampled_from(roles))
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
            verbosity=hypothesis.Verbosity.quiet,
        )
        def run(case: schemathesis.Case, role: str) -> None:
            if time.monotonic() > op_deadline:
                return
            _send(op, case, role, tokens, report)

        run()
