"""The reports as PDF documents, read back with pypdf: the biennial audit, the log of use (and its public version),
the summary to the commissioner (subd. 6(c)) and the BCA notice letter (subd. 8)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from pypdf import PdfReader
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

AGENCY = "MN0271200"


def _text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_reports_as_pdf_documents(settings: Settings, make_token: TokenFactory) -> None:
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            day = (datetime.now(UTC) - timedelta(days=500)).date()
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=2)
            # Facts of a day long purged: the documents show them.
            async with ingest.state.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO ingest.read_facts VALUES (:d, :a, 'PDF-7', 'unit:PDF-7', '', 4321, 3999, 17, "
                        "CAST(:c AS jsonb))"
                    ),
                    {"d": day, "a": AGENCY, "c": '{"private": 4300, "active_investigative": 21}'},
                )
                await conn.execute(text("INSERT INTO ingest.read_fact_days VALUES (:d, now(), true)"), {"d": day})
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hit_facts VALUES (:d, :a, 'PDF-7', 'stolen_vehicle', 'bca', false, 9, "
                        "CAST(:o AS jsonb)), (:d, :a, 'PDF-7', 'investigation', 'pdf-covert', true, 3, "
                        "'{}'::jsonb)"
                    ),
                    {"d": day, "a": AGENCY, "o": '{"valid:arrest": 2}'},
                )
                await conn.execute(text("INSERT INTO hotlist.hit_fact_days VALUES (:d, now(), true)"), {"d": day})
            auditor = make_token(subject="aud-pdf", roles=["auditor"], agency=AGENCY)
            supervisor = make_token(subject="sup-pdf", roles=["supervisor"], agency=AGENCY)
            params = {"start": start.isoformat(), "end": end.isoformat()}

            audit = await client.get("/v1/reports/audit", params={**params, "format": "pdf"}, headers=_auth(auditor))
            assert audit.status_code == 200, audit.text
            assert audit.headers["content-type"] == "application/pdf" and audit.content.startswith(b"%PDF")
            words = _text(audit.content)
            for expected in (
                "ALPR biennial audit",
                "13.824 subd. 6",
                "4321",
                "stolen_vehicle",
                "active_investigative",
                "Hash chain",
                "Reads per day",
            ):
                assert expected in words, expected

            log = await client.get(
                "/v1/reports/log-of-use", params={**params, "format": "pdf"}, headers=_auth(supervisor)
            )
            assert log.status_code == 200 and "PDF-7" in _text(log.content) and "pdf-covert" in _text(log.content)
            public = _text(
                (
                    await client.get("/v1/public/log-of-use", params={**params, "agency": AGENCY, "format": "pdf"})
                ).content
            )
            assert "public version" in public and "PDF-7" in public and "pdf-covert" not in public
            # Subd. 5(a)(3): the covert list's hits count in their category and day, the list unnamed.
            pub = await client.get("/v1/public/log-of-use", params={**params, "agency": AGENCY})
            assert pub.status_code == 200 and "pdf-covert" not in pub.text
            totals = pub.json()["totals"]
            assert totals["hits"] == 12 and totals["hits_by_category"]["investigation"] == 3
            assert totals["hits_by_list"] == {"bca": 9, "(covert lists, not named)": 3}

            summary = await client.get(
                "/v1/reports/commissioner-summary",
                params={**params, "completed_on": "2026-11-20", "format": "json"},
                headers=_auth(auditor),
            )
            assert summary.status_code == 200, summary.text
            body = summary.json()
            assert body["due_by"] == "2026-12-20" and body["findings"]["hits"] == 12
            assert any("Legislative Commission" in r for r in body["recipients"])
            doc = await client.get(
                "/v1/reports/commissioner-summary",
                params={**params, "completed_on": "2026-11-20", "format": "pdf"},
                headers=_auth(auditor),
            )
            words = _text(doc.content)
            assert "Summary of the ALPR biennial audit" in words and "2026-12-20" in words and AGENCY in words

            # The BCA notice letter: a unit used for the first time today is due for notice.
            name = f"PDF-U-{uuid.uuid4().hex[:6]}"
            async with ingest.state.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at, "
                        "ended_at, end_reason) VALUES (:id, :u, :a, 'B-9', 'o', ARRAY['front'], now(), now(), now(), "
                        "'logout')"
                    ),
                    {"id": uuid.uuid4(), "u": name, "a": AGENCY},
                )
            letter = await client.get("/v1/reports/bca-notices/letter", headers=_auth(supervisor))
            assert letter.status_code == 200, letter.text
            words = _text(letter.content)
            assert "Bureau of Criminal Apprehension" in words and "13.824 subd. 8" in words and name in words
            bad = await client.get(
                "/v1/reports/bca-notices/letter", params={"items": "nope"}, headers=_auth(supervisor)
            )
            assert bad.status_code == 422 and "not in the register" in bad.json()["detail"]
            async with ingest.state.engine.begin() as conn:
                await conn.execute(text("DELETE FROM ingest.shifts WHERE unit = :u"), {"u": name})


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_pdf_table_holds_every_row(settings: Settings, make_token: TokenFactory) -> None:
    """A log of use with 620 units: the PDF lists every one (the JSON and CSV always did)."""
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            day = (datetime.now(UTC) - timedelta(days=700)).date()
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            units = [f"ROW-{i:04d}" for i in range(620)]
            async with ingest.state.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO ingest.read_facts SELECT :d, :a, u, 'unit:' || u, '', 3, 3, 1, "
                        "CAST('{\"private\": 3}' AS jsonb) FROM unnest(CAST(:u AS text[])) AS u"
                    ),
                    {"d": day, "a": AGENCY, "u": units},
                )
                await conn.execute(text("INSERT INTO ingest.read_fact_days VALUES (:d, now(), true)"), {"d": day})
            supervisor = make_token(subject="sup-rows", roles=["supervisor"], agency=AGENCY)
            params = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat(), "format": "pdf"}
            log = await client.get("/v1/reports/log-of-use", params=params, headers=_auth(supervisor))
            assert log.status_code == 200, log.text
            words = _text(log.content)
            assert all(u in words for u in units), [u for u in units if u not in words][:5]
            assert "rows; the JSON and CSV" not in words
