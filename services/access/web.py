"""The web pages: the public transparency page per agency and the compliance dashboard behind log-in.

Server-rendered (Jinja2), no script, the one style sheet served from here (no other host), read-only pages. The
dashboard's log-in is the token endpoint's password grant: its access token goes in a cookie (`HttpOnly`,
`SameSite=Strict`, `Secure` in production, path `/dashboard`) that the dashboard checks as the API checks a bearer
token (signature, revocation, live session, role, training). Its only forms are log-in and log-out, POSTs from
this origin (an `Origin` of another host is refused)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import dashboard, identity, pdf, reports, transparency
from services.access.deps import FiguresDep, StoreDep
from services.access.public_cache import PublicReports
from services.access.report_routes import pdf_response
from shared.audit import client_ip
from shared.auth import Principal, check_training
from shared.db import SessionDep
from shared.errors import AppError, Forbidden, NotFound, Unauthorized, Unprocessable
from shared.scoping import Scope

router = APIRouter(include_in_schema=False)  # pages, not API: the OpenAPI document lists the API only
HERE = Path(__file__).parent
COOKIE = "alpr_dashboard"
DASHBOARD_ROLES = ("supervisor", "auditor", "admin")
ORI = re.compile(r"^[A-Za-z0-9]{1,32}$")
# No script, no frame, nothing from another host; styles from here only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def chart(ident: str, title: str, data: dict[str, int], width: int = 440, height: int = 200) -> Markup:
    """A bar chart as inline SVG, labelled for screen readers (the numbers are in the table beside it)."""
    e = html.escape
    if not data or not any(data.values()):
        return Markup(f'<p class="muted" id="{e(ident)}">{e(title)}: none in the period.</p>')
    top = max(data.values()) or 1
    pad_l, pad_b, pad_t = 44, 36, 10
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    bw = plot_w / len(data)
    parts = [
        f'<svg id="{e(ident)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{e(ident)}-t">',
        f'<title id="{e(ident)}-t">{e(title)} (the numbers are in the table beside the chart)</title>',
        f'<line class="axis" x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 8}" y2="{pad_t + plot_h}"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end">{top}</text>',
        f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end">0</text>',
    ]
    every = max(1, len(data) // 12)
    for i, (label, value) in enumerate(data.items()):
        h = plot_h * value / top
        x = pad_l + i * bw
        parts.append(
            f'<rect class="bar" x="{x + bw * 0.15:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw * 0.7, 1):.1f}" '
            f'height="{h:.1f}"/>'
        )
        if i % every == 0:
            short = label[2:] if re.fullmatch(r"\d{4}-\d{2}", label) else label[:14]
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{pad_t + plot_h + 14}" text-anchor="middle">{e(short)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def table(caption: str, key_head: str, value_head: str, data: dict[str, int], figure: str) -> Markup:
    e = html.escape
    if not data:
        return Markup(f'<p class="muted">{e(caption)}: none.</p>')
    rows = "".join(
        f'<tr><th scope="row">{e(k)}</th><td class="n" data-figure="{e(figure)}:{e(k)}">{v}</td></tr>'
        for k, v in data.items()
    )
    return Markup(
        f'<table><caption>{e(caption)}</caption><thead><tr><th scope="col">{e(key_head)}</th>'
        f'<th scope="col" class="n">{e(value_head)}</th></tr></thead><tbody>{rows}</tbody></table>'
    )


templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
templates.globals.update(chart=chart, table=table)


def _page(name: str, status: int = 200, *, private: bool = False, **context: Any) -> HTMLResponse:
    resp = HTMLResponse(templates.get_template(name).render(**context), status_code=status)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    if private:
        resp.headers["Cache-Control"] = "no-store"
    return resp


@router.get("/web/static/site.css")
async def style_sheet() -> FileResponse:
    return FileResponse(HERE / "static" / "site.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"})


# ---- the public transparency page ----


def _ori(ori: str) -> str:
    if not ORI.match(ori):
        raise Unprocessable("agency: an ORI is 1 to 32 letters and digits")
    return ori


def _cache(request: Request) -> PublicReports:
    cache: PublicReports = request.app.state.transparency_pages
    return cache


@router.get("/transparency/{ori}")
async def transparency_page(
    request: Request, session: SessionDep, figures: FiguresDep, ori: Annotated[str, PathParam(max_length=32)]
) -> HTMLResponse:
    agency = _ori(ori)
    settings = request.app.state.settings
    today = datetime.now(UTC).date()
    start, end = transparency.period(today)
    p = await _cache(request).get(client_ip(request) or "unknown", agency, start, end, lambda: transparency.page(
        session, figures, settings, agency, today))  # fmt: skip
    resp = _page("transparency.html", p={**p, "period": {**p["period"], "until": end.date().isoformat()}})
    resp.headers["Cache-Control"] = f"public, max-age={int(settings.public_report_cache_s)}"
    return resp


@router.get("/transparency/{ori}/audit-summary.pdf")
async def transparency_audit_summary(
    request: Request, session: SessionDep, figures: FiguresDep, ori: Annotated[str, PathParam(max_length=32)]
) -> Response:
    """The last biennial audit's summary for the commissioner and the Legislature (subd. 6(c)): public."""
    agency = _ori(ori)
    last = await transparency.last_audit(session, agency)
    if last is None:
        raise NotFound("no biennial audit is recorded for this agency")
    start, end = datetime.fromisoformat(last["start"]), datetime.fromisoformat(last["end"])
    completed = datetime.fromisoformat(last["completed_on"]).date()

    async def compute() -> bytes:
        audit = await reports.audit_report(session, figures, start, end, agency=agency)
        return pdf.commissioner_summary_pdf(reports.commissioner_summary(audit, completed_on=completed))

    content = await _cache(request).get(client_ip(request) or "unknown", f"{agency}:summary", start, end, compute)
    return pdf_response(content, f"audit-summary-{agency}")


# ---- the compliance dashboard ----


def _same_origin(request: Request) -> None:
    """Log-in and log-out are the only POSTs: refused from a page of another origin (with SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("a form of another site may not post here")


async def _viewer(request: Request, session: AsyncSession) -> tuple[Principal, str]:
    """The dashboard's caller from its cookie, checked as the API checks a bearer token."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("not logged in")
    principal: Principal = await request.app.state.verifier.verify(token)
    revocations = getattr(request.app.state, "revocations", None)
    if revocations is not None:
        await revocations.check(principal)
    if not principal.has_role(*DASHBOARD_ROLES):
        raise Forbidden("the dashboard is for an agency's supervisors, auditors and administrators")
    await identity.check_session(session, request.app.state.settings, principal, request)
    check_training(principal)
    return principal, token


def _to_login(error: str | None = None) -> RedirectResponse:
    resp = RedirectResponse("/dashboard/login" + ("?expired=1" if error else ""), status_code=303)
    resp.delete_cookie(COOKIE, path="/dashboard")
    return resp


@router.get("/dashboard/login")
async def login_page(expired: bool = False) -> HTMLResponse:
    return _page("login.html", private=True, error="Your session ended: log in again." if expired else None)


@router.post("/dashboard/login")
async def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    totp: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    _same_origin(request)
    state = request.app.state
    try:
        issued = await identity.password_grant(
            session, state.settings, state.passwords, state.keys, request, username=username, password=password,
            totp=totp or None, throttle=state.login_throttle,
        )  # fmt: skip
    except AppError as exc:
        return _page("login.html", exc.status_code, private=True, error=str(exc.detail))
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.set_cookie(
        COOKIE,
        issued.access_token,
        max_age=issued.expires_in,
        path="/dashboard",
        httponly=True,
        secure=state.settings.environment == "production",
        samesite="strict",
    )
    return resp


@router.post("/dashboard/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    _same_origin(request)
    try:
        principal, _ = await _viewer(request, session)
    except (Unauthorized, Forbidden):
        return _to_login()
    await identity.logout(session, principal, request)
    return _to_login()


@router.get("/dashboard")
async def dashboard_page(request: Request, session: SessionDep, figures: FiguresDep, store: StoreDep) -> Response:
    try:
        principal, token = await _viewer(request, session)
    except Unauthorized:
        return _to_login(error="expired" if request.cookies.get(COOKIE) else None)
    except Forbidden as exc:
        return _page("login.html", 403, private=True, error=str(exc.detail))
    settings = request.app.state.settings
    urls = {"ingest": settings.url_of("ingest"), "hotlist": settings.url_of("hotlist")}
    scope = Scope(principal)  # the API's scoping: the viewer's agency, in every query and call below
    d = await dashboard.dashboard(session, figures, settings, store, scope, token, urls)
    await scope.audit(
        session,
        service="access",
        action="dashboard.view",
        source_ip=client_ip(request),
        details={"agency": d["agency"]},
    )
    return _page("dashboard.html", private=True, d=d)
