"""Archived-read search end to end: reads posted through ingest's API, searched through access inside a grant,
access calling the real ingest archive (`POST /v1/internal/reads/search`). Wildcards, misread-tolerant matching,
time and area filters, paging, presigned links that fetch the real photo, and the audit entries on both sides."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.access.main import create_app as access_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.access.conftest import AGENCY_ORI, CHEAP_ARGON2, Access, bearer
from tests.access.test_search import NOW, granted
from tests.conftest import TokenFactory
from tests.ingest.conftest import Officer, image_bytes, ingest_settings
from tests.ingest.test_reads import _rows
from tests.support.apps import running

# The grant helper dates its requests from its own NOW.


@pytest.fixture
async def archive(settings: Settings) -> AsyncIterator[tuple[Access, httpx.AsyncClient]]:
    own = settings.model_copy(update=CHEAP_ARGON2)
    ingest = ingest_app(ingest_settings(own))
    async with running(ingest) as ingest_client:
        app = access_app(own, ingest_transport=httpx.ASGITransport(app=ingest))
        async with running(app) as client:
            yield Access(app, client), ingest_client


async def _post(officer: Officer, plate: str, days_ago: float, lat: float, lon: float, photo: bytes | None) -> str:
    meta = officer.meta(
        plate=plate, state="MN", lat=lat, lon=lon, captured_at=(NOW - timedelta(days=days_ago)).isoformat()
    )
    resp = await officer.post_read(meta, photo=photo)
    assert resp.status_code == 200, resp.text
    read_id: str = resp.json()["read_id"]
    return read_id


async def test_search_inside_a_grant_over_the_real_archive(archive: Any, make_token: TokenFactory) -> None:
    access, ingest = archive
    officer_person, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer_person), await access.token(sup)
    # The car posts through ingest: an officer of the same agency on a shift (its token from access itself).
    car = Officer(ingest, officer_token, officer_person.badge or "", unit=f"car-{uuid.uuid4().hex[:8]}")
    assert (await car.start()).status_code == 201, "an access-issued officer token opens a shift at ingest"

    # A scene of our own (other tests' reads are elsewhere), plates with a prefix of our own.
    p = "".join(random.choices("ACEFHJKMNPRTUVWXY", k=3))
    lat, lon = 47.0 + random.random(), -95.0 + random.random()
    far = (lat + 0.2, lon)  # ~22 km north
    photo = image_bytes(noise=30)
    ids = {
        "exact": await _post(car, f"{p}123", 2.5, lat + 0.001, lon, photo),
        "misread": await _post(car, f"{p}1Z3", 2.2, lat, lon + 0.001, None),  # the same plate, 2 read as Z
        "early": await _post(car, f"{p}199", 6, lat, lon, None),  # before the window
        "far": await _post(car, f"{p}155", 2.5, *far, None),  # outside the area
        "other": await _post(car, "".join(random.choices("ACEFHJKMNPRTUVWXY", k=3)) + "777", 2.5, lat, lon, None),
    }
    # Another agency's car at the same scene, the same plate prefix: our supervisor's grant does not open its reads.
    foreign_badge = str(uuid.uuid4().int % 100000)
    foreign_token = make_token(
        subject=f"officer-{foreign_badge}", roles=["officer"], badge=foreign_badge, agency="MN0279999",
        trained_until=int(time.time()) + 86400,
    )  # fmt: skip
    foreign_car = Officer(ingest, foreign_token, foreign_badge, unit=f"car-{uuid.uuid4().hex[:8]}")
    assert (await foreign_car.start()).status_code == 201
    await _post(foreign_car, f"{p}123", 2.4, lat, lon, None)
    scene = {"lat": lat, "lon": lon, "radius_m": 2000}
    grant = await granted(access, officer_token, sup_token, plates=[f"{p}1*"], area=scene, misread_tolerant=True)
    assert grant["data_agency"] == AGENCY_ORI  # the deciding supervisor's agency
    window = {"start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat()}

    async def search(**body: Any) -> dict[str, Any]:
        query = {"grant_id": grant["id"], "plates": [f"{p}1*"], "area": scene, **window, **body}
        resp = await access.client.post("/v1/reads/search", json=query, headers=bearer(officer_token))
        assert resp.status_code == 200, resp.text
        answer: dict[str, Any] = resp.json()
        return answer

    assert [r["read_id"] for r in (await search())["reads"]] == [ids["exact"], ids["misread"]]
    strict = await search(plates=[f"{p}12*"])
    assert [r["read_id"] for r in strict["reads"]] == [ids["exact"]]
    tolerant = await search(plates=[f"{p}12*"], misread_tolerant=True)
    assert [r["read_id"] for r in tolerant["reads"]] == [ids["exact"], ids["misread"]]
    # Misread-tolerant on both sides: a query written with the confusable character finds the true plate too.
    assert [r["read_id"] for r in (await search(plates=[f"{p}1Z3"], misread_tolerant=True))["reads"]] == [
        ids["exact"],
        ids["misread"],
    ]
    assert [r["read_id"] for r in (await search(plates=[f"{p}1?3"]))["reads"]] == [ids["exact"], ids["misread"]]
    assert (await search(plates=[f"{p}12?"]))["count"] == 1
    small = await search(area={"lat": lat, "lon": lon + 0.001, "radius_m": 30})
    assert [r["read_id"] for r in small["reads"]] == [ids["misread"]]

    # Paging through ingest's cursor.
    first = await search(limit=1)
    second = await search(limit=1, cursor=first["next_cursor"])
    assert [r["read_id"] for r in first["reads"] + second["reads"]] == [ids["exact"], ids["misread"]]
    assert second["next_cursor"] is None

    # The presigned link fetches the photo the car posted; a read without a photo has no link.
    exact = strict["reads"][0]
    assert (exact["plate"], exact["unit"], exact["camera"], exact["agency"]) == (
        f"{p}123",
        car.unit,
        "front",
        AGENCY_ORI,
    )
    link = httpx.URL(exact["image_url"])
    assert (
        await access.client.get(f"{link.path}?{link.query.decode()}", headers=bearer(officer_token))
    ).content == photo
    assert tolerant["reads"][1]["image_url"] is None

    # Audited at access (the person, the grant, the count) and at ingest (access's service identity).
    auditor = make_token(subject="aud-int", roles=["auditor"], agency=AGENCY_ORI)
    both = await access.audit(auditor, action="reads.search", grant_id=grant["id"])
    # Ingest's entries name the grant too (the token access signed for each query carries it).
    assert {e["service"] for e in both} == {"access", "ingest"}
    entries = [e for e in both if e["service"] == "access"]
    assert all(e["actor"] == officer_person.id and e["outcome"] == "ok" for e in entries)
    assert [e["record_count"] for e in entries] == [2, 1, 2, 2, 2, 1, 1, 1, 1]
    assert entries[1]["details"]["query"]["plates"] == [f"{p}12*"]
    at_ingest = await _rows(
        access.app.state.settings,
        "SELECT actor, record_count FROM audit.audit_log WHERE service = 'ingest' AND action = 'reads.search' "
        "AND object_ids && CAST(:ids AS text[]) ORDER BY seq",
        ids=[ids["exact"], ids["misread"]],
    )
    assert {r.actor for r in at_ingest} == {"service:access"} and len(at_ingest) == 9


async def test_an_area_grant_searches_every_plate_in_its_area(archive: Any) -> None:
    access, ingest = archive
    officer_person, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer_person), await access.token(sup)
    car = Officer(ingest, officer_token, officer_person.badge or "", unit=f"car-{uuid.uuid4().hex[:8]}")
    assert (await car.start()).status_code == 201
    lat, lon = 46.0 + random.random(), -94.0 + random.random()
    inside = [await _post(car, f"AR{i}{int(time.time()) % 1000:03d}", 2.0 + i / 10, lat, lon, None) for i in range(2)]
    await _post(car, "AR9000", 2.0, lat + 0.1, lon, None)
    # A photo in which no plate was read (recognition off here) is area data too.
    meta = car.meta(lat=lat, lon=lon, captured_at=(NOW - timedelta(days=1.5)).isoformat())
    unread = await car.post_read(meta, photo=image_bytes())
    assert unread.status_code == 200 and unread.json()["plate"] is None
    scene = {"lat": lat, "lon": lon, "radius_m": 1000}
    grant = await granted(access, officer_token, sup_token, plates=[], area=scene)
    resp = await access.client.post(
        "/v1/reads/search",
        json={
            "grant_id": grant["id"],
            "plates": [],
            "area": scene,
            "start": (NOW - timedelta(days=3)).isoformat(),
            "end": (NOW - timedelta(days=1)).isoformat(),
        },
        headers=bearer(officer_token),
    )
    assert resp.status_code == 200, resp.text
    reads = resp.json()["reads"]
    assert [r["read_id"] for r in reads] == [*inside[::-1], unread.json()["read_id"]]  # by capture time
    assert reads[-1]["plate"] is None and reads[-1]["image_url"]
