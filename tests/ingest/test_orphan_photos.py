"""Orphan photos (issue 29): a photo no read refers to (an ingest worker killed between the upload and the commit;
the car's retry stores another) is removed by the purge once older than ALPR_PURGE_ORPHAN_GRACE_S, and counted in
the run's record, the dry run and /metrics; a younger one (an in-flight read's) and every read's photo stay, for
the reads of both agencies. On the S3 store (weed) and the local folder."""

from __future__ import annotations

import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from alpr.commands.retention import run_purge
from services.ingest import retention
from services.ingest.main import create_app
from shared.settings import Settings
from tests.ingest.conftest import MakeOfficer, image_bytes, ingest_settings
from tests.support.apps import running

AGENCIES = ("MN0272901", "MN0272902")


@pytest.fixture(params=["s3", "local"])
def base(request: pytest.FixtureRequest, settings: Settings, local_settings: Settings) -> Settings:
    return settings if request.param == "s3" else local_settings


def _orphan_removed_total(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith("alpr_ingest_orphan_photos_removed_total "))
    return float(line.split()[1])


async def test_orphans_older_than_the_grace_go_and_are_counted(base: Settings, officer_factory) -> None:  # type: ignore[no-untyped-def]
    s = ingest_settings(base)
    app = create_app(s, run_worker=False)
    async with running(app) as client:
        engine, store = app.state.engine, app.state.store
        make: MakeOfficer = officer_factory(client)
        read_keys: set[str] = set()
        orphans: set[str] = set()
        for agency in AGENCIES:
            officer = make(agency=agency)
            assert (await officer.start()).status_code == 201
            posted = await officer.post_read(officer.meta(), image_bytes(), image_bytes("PNG"))
            assert posted.status_code == 200, posted.text
            read_id = posted.json()["read_id"]
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT agency, image_key, crop_key FROM ingest.reads WHERE id = :i"), {"i": read_id}
                    )
                ).one()
            assert row.agency == agency and row.image_key and row.crop_key
            read_keys |= {row.image_key, row.crop_key}
            # What a SIGKILLed worker leaves: the same read's photo under another random part (the retry stored
            # its own), and a photo of a read that never committed at all.
            day_dir = row.image_key.rsplit("/", 1)[0]
            orphans |= {
                f"{day_dir}/{read_id}.{secrets.token_hex(4)}.jpg",
                f"{day_dir}/{uuid.uuid4()}.{secrets.token_hex(4)}.jpg",
            }
        for key in orphans:
            await store.put(key, image_bytes(), "image/jpeg")
        ours = read_keys | orphans

        async def present() -> set[str]:
            return {k for k in await store.list("reads/") if k in ours}

        before = _orphan_removed_total((await client.get("/metrics")).text)
        # Now: every orphan is younger than the grace (an in-flight read's photo looks just like it): all stay.
        now = datetime.now(UTC)
        fresh = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert fresh.status == "finished"
        assert await present() == ours

        # An hour and more later: the orphans go, the reads' photos stay, and the dry run counted them first.
        later = now + timedelta(seconds=s.purge_orphan_grace_s + 60)
        recent = tuple(retention.day_prefix(later.date() + timedelta(days=1 - i)) for i in range(15))

        async def listed_recent() -> set[str]:  # the days the orphan sweep looks at (due days go whole)
            return {k for k in await store.list("reads/") if k.startswith(recent)}

        listed = await listed_recent()
        dry = await retention.purge(engine, store, s, actor="test", trigger="cli", dry_run=True, at=later)
        assert dry.orphans_destroyed >= len(orphans)  # other tests' orphans of these days count too
        assert await present() == ours
        run = await retention.purge(engine, store, s, actor="test", trigger="cli", at=later)
        assert await present() == read_keys
        gone = listed - await listed_recent()
        assert orphans <= gone
        assert run.orphans_destroyed == len(gone) == dry.orphans_destroyed
        async with engine.connect() as conn:
            recorded = (
                await conn.execute(
                    text("SELECT orphans_destroyed FROM ingest.purge_runs WHERE id = :i"), {"i": run.run_id}
                )
            ).scalar_one()
        assert recorded == run.orphans_destroyed
        assert _orphan_removed_total((await client.get("/metrics")).text) == before + run.orphans_destroyed
        # The reads' photos are still served to their agency's audited views: their objects are whole.
        for key in read_keys:
            assert len(await store.get(key)) > 0


async def test_cli_dry_run_counts_orphans_on_the_local_folder(local_settings: Settings, officer_factory) -> None:  # type: ignore[no-untyped-def]
    """`alpr purge --dry-run` counts an orphan past the grace (the folder's file time set back, as an hour's wait
    would) and removes nothing; `alpr purge` removes it."""
    s = ingest_settings(local_settings)
    app = create_app(s, run_worker=False)
    async with running(app) as client:
        store = app.state.store
        officer = officer_factory(client)(agency=AGENCIES[0])
        assert (await officer.start()).status_code == 201
        posted = await officer.post_read(officer.meta(), image_bytes())
        assert posted.status_code == 200, posted.text
        day = datetime.now(UTC).date()
        old = f"reads/{day:%Y/%m/%d}/{uuid.uuid4()}.{secrets.token_hex(4)}.jpg"
        young = f"reads/{day:%Y/%m/%d}/{uuid.uuid4()}.{secrets.token_hex(4)}.jpg"
        await store.put(old, image_bytes(), "image/jpeg")
        await store.put(young, image_bytes(), "image/jpeg")
        aged = datetime.now(UTC).timestamp() - s.purge_orphan_grace_s - 60
        os.utime(Path(s.objects_dir) / old, (aged, aged))

        dry = await run_purge(s, dry_run=True, actor="cli:test")
        assert dry["reads"]["orphans_destroyed"] >= 1
        assert await store.exists(old) and await store.exists(young)
        done = await run_purge(s, dry_run=False, actor="cli:test")
        assert done["reads"]["orphans_destroyed"] == dry["reads"]["orphans_destroyed"]
        assert not await store.exists(old)
        assert await store.exists(young)
