"""Both pages in a real browser (Debian's Chromium through chromedriver) on a system with two agencies' data: the
figures the browser shows are the API's, agency A's pages show nothing of B's and no plate, the pages load nothing
from another host and need no script, axe-core finds no WCAG 2 A/AA violation, print hides the navigation; the
log-in cookie is HttpOnly and SameSite=Strict. Screenshots and axe's results are kept in the printed folder."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from services.access import transparency
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.web.figures import figures, number, table
from tests.web.system import PASSWORD, auth, serving, two_agencies

AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def _axe(driver: webdriver.Chrome, source: str) -> list[dict[str, Any]]:
    driver.execute_script(source)
    result: list[dict[str, Any]] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.html).slice(0, 3)}))))"
        ".catch(e => done([{id: 'axe-error', help: String(e)}]));",
        AXE_RULES,
    )
    return result


def _shoot(driver: webdriver.Chrome, path: Path) -> None:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height, 600), 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def _look(driver: webdriver.Chrome, base: str, axe: str, folder: Path, name: str) -> dict[str, Any]:
    """What a visitor gets: the figures, the text, the structure, what was loaded, axe's findings, a screenshot."""
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    out = {
        "url": driver.current_url,
        "source": driver.page_source,
        "text": driver.find_element(By.TAG_NAME, "body").text,
        "landmarks": {t: len(driver.find_elements(By.TAG_NAME, t)) for t in ("header", "main", "footer", "nav")},
        "h1": len(driver.find_elements(By.TAG_NAME, "h1")),
        "tables": len(driver.find_elements(By.TAG_NAME, "table")),
        "captions": len(driver.find_elements(By.TAG_NAME, "caption")),
        "styled": driver.execute_script("return getComputedStyle(document.querySelector('header')).borderBottomStyle"),
        "foreign": [r for r in resources if not r.startswith(base)],
        "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
    }
    _shoot(driver, folder / f"{name}.png")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    navs = driver.find_elements(By.TAG_NAME, "nav")
    out["nav_printed"] = any(n.is_displayed() for n in navs)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    out["axe"] = _axe(driver, axe)
    (folder / f"{name}.axe.json").write_text(json.dumps(out["axe"], indent=2))
    return out


def _browse(driver: webdriver.Chrome, base: str, axe: str, folder: Path, oris: list[str], login: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for ori in oris:
        driver.get(f"{base}/transparency/{ori}")
        seen[ori] = _look(driver, base, axe, folder, f"transparency-{ori}")
    driver.get(f"{base}/dashboard")
    seen["login_url"] = driver.current_url
    seen["login"] = _look(driver, base, axe, folder, "dashboard-login")
    driver.find_element(By.ID, "username").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    # A click does not wait for the answer: the dashboard (its log-out form) has loaded once the cookie is set.
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.logout"))
    seen["cookies"] = driver.get_cookies()
    seen["dashboard"] = _look(driver, base, axe, folder, "dashboard")
    # The check can fail: a field without a label, put into the page, is found.
    driver.execute_script("document.querySelector('main').insertAdjacentHTML('beforeend', '<input type=text>')")
    seen["axe_broken"] = {v["id"] for v in _axe(driver, axe)}
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.login"))
    seen["after_logout"] = driver.current_url
    return seen


async def test_pages_in_a_real_browser(
    settings: Settings, make_token: TokenFactory, browser: webdriver.Chrome, axe_source: str, artifacts: Path
) -> None:
    async with two_agencies(settings, make_token) as web, serving(web.access) as base:
        a, b = web.a, web.b
        seen = await asyncio.to_thread(
            _browse, browser, base, axe_source, artifacts, [a.ori, b.ori], a.people["supervisor"]
        )
        start, end = transparency.period(datetime.now(UTC).date())
        for me, other in ((a, b), (b, a)):
            page = seen[me.ori]
            assert page["url"] == f"{base}/transparency/{me.ori}"
            leaks = [x for x in other.leaks() + me.plates + [f"list-{me.tag}"] if x in page["source"]]
            assert not leaks, f"{me.ori}'s page shows {leaks}"
            figs = figures(page["source"])
            api = await web.client.get(
                "/v1/public/log-of-use", params={"agency": me.ori, "start": start.isoformat(), "end": end.isoformat()}
            )
            totals = api.json()["totals"]
            assert number(figs, "reads_year") == totals["reads"] == sum(me.reads_per_day)
            assert table(figs, "hits_year_by_category") == totals["hits_by_category"]
            assert str(totals["reads"]) in page["text"]  # shown, not only in the markup
        for name in (a.ori, b.ori, "login", "dashboard"):
            page = seen[name]
            assert page["landmarks"]["header"] == page["landmarks"]["main"] == page["landmarks"]["footer"] == 1, name
            assert page["h1"] == 1 and page["tables"] == page["captions"], name
            assert page["styled"] == "solid", f"{name}: the style sheet did not load"
            assert page["foreign"] == [] and page["scripts"] == 0, name
            assert not page["nav_printed"], f"{name}: the navigation prints"
            assert page["axe"] == [], f"{name}: accessibility violations {page['axe']}"
        assert seen["login_url"] == f"{base}/dashboard/login"
        (cookie,) = [c for c in seen["cookies"] if c["name"] == "alpr_dashboard"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
        dash = seen["dashboard"]
        assert dash["url"] == f"{base}/dashboard"
        assert f"agency {a.ori}" in dash["text"]
        leaks = [x for x in b.leaks() + [f"laptop of {b.tag}", b.ori] if x in dash["source"]]
        assert not leaks, f"A's dashboard shows {leaks}"
        breaches = (await web.client.get("/v1/breaches", headers=auth(web.token(a, "supervisor")))).json()
        assert number(figures(dash["source"]), "breaches_open") == len(breaches["breaches"]) == 1
        assert "label" in seen["axe_broken"]
        assert seen["after_logout"] == f"{base}/dashboard/login"
