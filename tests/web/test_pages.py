"""The web pages through HTTP, as a browser asks for them: the public transparency page per agency (figures as the
API gives them, nothing of another agency's, no plate, the same after a purge, cached and limited) and the
compliance dashboard behind its log-in cookie (scoped, trained, audited, read-only)."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from services.access import identity, transparency
from services.access.main import create_app
from services.hotlist import retention as hit_retention
from services.ingest import retention
from services.ingest.holds import held_among
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running
from tests.web.figures import figures, number, table
from tests.web.system import DAYS_AGO, PASSWORD, Agency, Web, auth, two_agencies


async def _page(web: Web, ag: Agency) -> str:
    resp = await web.client.get(f"/transparency/{ag.ori}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert "script-src" not in resp.headers["content-security-policy"]  # default-src 'none': no script at all
    return resp.text


def _own_host_only(page: str, *, links: bool = True) -> None:
    """Nothing loaded from another host: no script, no `src`, the style sheet from this origin; `links`: every link
    on this origin too (the dashboard links API records on ingest and hotlist, the back office's own services)."""
    assert "<script" not in page
    assert not re.findall(r'src="', page)
    assert re.findall(r'<link [^>]*href="([^"]+)"', page) == ["/web/static/site.css"]
    if links:
        assert not re.findall(r'href="(?:https?:)?//', page)


async def _api_figures(web: Web, ag: Agency) -> dict[str, object]:
    start, end = transparency.period(datetime.now(UTC).date())
    resp = await web.client.get(
        "/v1/public/log-of-use", params={"agency": ag.ori, "start": start.isoformat(), "end": end.isoformat()}
    )
    assert resp.status_code == 200, resp.text
    totals = resp.json()["totals"]
    return {"reads": totals["reads"], "hits_by_category": totals["hits_by_category"], "units": totals["units"]}


async def test_transparency_page_per_agency_and_after_a_purge(settings: Settings, make_token: TokenFactory) -> None:
    async with two_agencies(settings, make_token, public_report_cache_s=0.0) as web:
        before = {}
        for me, other in ((web.a, web.b), (web.b, web.a)):
            page = await _page(web, me)
            _own_host_only(page)
            found = [x for x in other.leaks() + me.plates + [f"list-{me.tag}", me.case] if x in page]
            assert not found, f"{me.ori}'s page shows {found}"
            assert "45.01" not in page and "93.31" not in page, "a read's position is on the public page"
            figs = figures(page)
            api = await _api_figures(web, me)
            # The API's public log of use for the same period, and what the data set holds.
            assert number(figs, "reads_year") == api["reads"] == sum(me.reads_per_day)
            assert table(figs, "hits_year_by_category") == api["hits_by_category"]
            # Covert-list hits count in their category (subd. 5(a)(3)), the list never named.
            assert sum(table(figs, "hits_year_by_category").values()) == me.hits + me.covert_hits
            assert number(figs, "reads_recent") == me.reads_per_day[0]
            assert number(figs, "mobile_units") == 1  # one CAR-1 each, never merged with the other's
            assert number(figs, "fixed_readers") == (1 if me is web.a else 0)
            assert number(figs, "requests_approved") == number(figs, "requests_denied") == 1
            assert number(figs, "searches") == (2 if me is web.a else 1)
            basis = table(figs, "searches_by_basis")
            assert basis == ({"warrant": 2} if me is web.a else {"grant (investigation)": 1})
            assert number(figs, "safe_at_home") == 1 and number(figs, "exculpatory") == 0
            assert number(figs, "retention_days") == web.settings.retention_days
            if me is web.a:
                assert figs["last_audit"] == datetime.now(UTC).date().isoformat()
                pdf = await web.client.get(f"/transparency/{me.ori}/audit-summary.pdf")
                assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            else:
                assert "No biennial audit" in figs["last_audit"]
                assert (await web.client.get(f"/transparency/{me.ori}/audit-summary.pdf")).status_code == 404
            before[me.ori] = figs

        # ---- the purge destroys the reads 90 and 150 days old; no figure on either page moves
        engine = web.ingest.state.engine
        now = datetime.now(UTC)
        await retention.purge(
            engine, web.ingest.state.store, ingest_settings(web.settings), actor="test-web", trigger="cli", at=now
        )
        held = functools.partial(held_among, engine)
        await hit_retention.purge(engine, web.settings, held_reads=held, actor="test-web", trigger="cli", at=now)
        for me in (web.a, web.b):
            async with engine.connect() as conn:
                left = (
                    await conn.execute(text("SELECT count(*) FROM ingest.reads WHERE agency = :a"), {"a": me.ori})
                ).scalar_one()
            assert left == me.reads_per_day[0], "the purge left reads past retention"
            assert figures(await _page(web, me)) == before[me.ori]
        assert len(DAYS_AGO) == 3


async def test_transparency_page_bad_agency_cache_and_limit(settings: Settings, make_token: TokenFactory) -> None:
    async with two_agencies(settings, make_token, public_report_limit="2/minute") as web:
        bad = await web.client.get("/transparency/MN%20027")
        assert bad.status_code == 422 and "ORI" in bad.json()["detail"]
        first = await web.client.get(f"/transparency/{web.a.ori}")
        assert first.status_code == 200
        assert "public, max-age=300" == first.headers["cache-control"]
        assert (await web.client.get(f"/transparency/{web.b.ori}")).status_code == 200
        again = await web.client.get(f"/transparency/{web.a.ori}")  # cached: no new computation, no limit spent
        assert again.status_code == 200 and figures(again.text) == figures(first.text)
        refused = await web.client.get("/transparency/MNNOBODY1")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        css = await web.client.get("/web/static/site.css")
        assert (
            css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "@media print" in css.text
        )


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/dashboard/login", data={"username": username, "password": password})


async def test_dashboard_login_scope_training_audit(settings: Settings, make_token: TokenFactory) -> None:
    async with two_agencies(settings, make_token) as web:
        c = web.client
        first = await c.get("/dashboard")
        assert first.status_code == 303 and first.headers["location"] == "/dashboard/login"
        wrong = await _login(c, web.a.people["supervisor"], "not the password")
        assert wrong.status_code == 401 and "<form" in wrong.text
        evil = await c.post(
            "/dashboard/login",
            data={"username": web.a.people["supervisor"], "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
        assert evil.status_code == 403
        for me, other in ((web.a, web.b), (web.b, web.a)):
            c.cookies.clear()
            ok = await _login(c, me.people["supervisor"])
            assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
            cookie = ok.headers["set-cookie"]
            for flag in ("HttpOnly", "SameSite=strict", "Path=/dashboard"):
                assert flag.lower() in cookie.lower(), cookie
            assert "secure" not in cookie.lower()  # the test environment is plain HTTP; production adds Secure
            page = await c.get("/dashboard")
            assert page.status_code == 200, page.text
            assert page.headers["cache-control"] == "no-store"
            _own_host_only(page.text, links=False)
            found = [x for x in other.leaks() + [f"laptop of {other.tag}"] if x in page.text]
            assert not found, f"{me.ori}'s dashboard shows {found}"
            figs = figures(page.text)
            sup = auth(web.token(me, "supervisor"))
            # The same figures the APIs give this agency's supervisor.
            breaches = (await c.get("/v1/breaches", headers=sup)).json()["breaches"]
            open_ = [b for b in breaches if any(d["done_at"] is None for d in b["duties"])]
            assert number(figs, "breaches_open") == len(open_) == (1 if me is web.a else 0)
            assert number(figs, "grants_expiring") == 1
            notices = (await c.get("/v1/reports/bca-notices", headers=sup)).json()["items"]
            assert number(figs, "notices_unsent") == sum(1 for n in notices if n["status"] != "sent")
            reviews = (await web.ing.get("/v1/holds/reviews", headers=sup)).json()["holds"]
            assert number(figs, "holds_due") == len(reviews) == (1 if me is web.a else 0)
            assert number(figs, "safe_at_home_pending") == 0
            # A's auditor checked the chain (intact); B's never did.
            assert (
                figs["audit_verify"].endswith("entries")
                if me is web.a
                else figs["audit_verify"] == "never run by this agency"
            )
            # Read-only: no form but log-out.
            assert re.findall(r'<form[^>]*action="([^"]+)"', page.text) == ["/dashboard/logout"]
            out = await c.post("/dashboard/logout")
            assert out.status_code == 303
        # Roles and training: an officer and an untrained supervisor are refused; an auditor gets in.
        for role, status in (("officer", 403), ("untrained", 403), ("auditor", 200)):
            c.cookies.clear()
            assert (await _login(c, web.a.people[role])).status_code == 303
            assert (await c.get("/dashboard")).status_code == status, role
        # A session logged out no longer opens the dashboard.
        stale = dict(c.cookies)
        assert (await c.post("/dashboard/logout")).status_code == 303
        c.cookies.update(stale)
        assert (await c.get("/dashboard")).status_code == 303
        # Each view is in the audit log, in the viewer's agency only.
        for me in (web.a, web.b):
            resp = await c.get(
                "/v1/audit", params={"action": "dashboard.view", "limit": 100}, headers=auth(web.token(me, "auditor"))
            )
            assert resp.status_code == 200, resp.text
            entries = resp.json()["entries"]
            assert entries and {e["agency"] for e in entries} == {me.ori}


async def test_dashboard_cookie_is_secure_in_production(settings: Settings) -> None:
    prod = settings.model_copy(update={"environment": "production", "password_time_cost": 2})
    app = create_app(prod)
    async with running(app) as client:
        async with app.state.sessionmaker() as session:
            await identity.create_user(
                session, app.state.passwords, username="web-prod-sup", password=PASSWORD, full_name="Prod",
                agency="MNWPROD01", roles=["auditor"],
            )  # fmt: skip
            await session.commit()
        resp = await _login(client, "web-prod-sup")
        assert resp.status_code == 303, resp.text
        assert "secure" in resp.headers["set-cookie"].lower().split("; ")
