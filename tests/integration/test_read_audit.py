"""Data entered in the audit trail (13.824 subd. 7(b)) without an entry per read: each group commit writes, per
agency, one chained entry naming the reads it stored with their count and SHA-256 Merkle root, in the same statement
as the reads. Any read's entry is found and its inclusion proof checks against the root; a wrong id or a changed
sibling does not; the root the database computed is the one `shared/merkle.py` computes; two agencies' reads of one
batch are two entries, each under its agency."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared import merkle
from shared.audit import verify_chain
from tests.hotlist.bca import extract, row
from tests.ingest.agents_support import drain, now_ms, post, register, results_body, rows
from tests.integration.conftest import System, eventually
from tests.security.test_two_agencies import audit_rows, officer, person

_TAG = uuid.uuid4().hex[:5].upper()
A, B = f"MNRA{_TAG}", f"MNRB{_TAG}"


def test_proofs_of_every_size_check_and_a_wrong_one_does_not() -> None:
    for n in range(1, 12):
        ids = [str(uuid.uuid4()) for _ in range(n)]
        top = merkle.root(ids)
        for item in ids:
            assert merkle.verify(item, merkle.proof(ids, item), top)
        assert not merkle.verify(str(uuid.uuid4()), merkle.proof(ids, ids[0]), top)
        if n > 1:
            side, sibling = merkle.proof(ids, ids[0])[0]
            assert not merkle.verify(ids[0], [(side, "00" * 32)], top) or sibling == "00" * 32


async def test_each_group_commit_is_one_entry_per_agency_proving_its_reads(system: System) -> None:
    car_a, car_b = officer(system, A, "CAR-R1"), officer(system, B, "CAR-R1")
    assert (await car_a.start()).status_code == 201 and (await car_b.start()).status_code == 201
    answers = await asyncio.gather(
        *(car.post_read(car.meta(plate=f"MK{i:03d}{n}")) for i in range(6) for n, car in enumerate((car_a, car_b)))
    )
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    ids = {r.json()["read_id"]: (A if i % 2 == 0 else B) for i, r in enumerate(answers)}

    engine = create_async_engine(system.settings.database_url)
    try:
        async with engine.connect() as conn:
            entries = (
                await conn.execute(
                    text(
                        "SELECT seq, agency, actor, object_ids, record_count, details FROM audit.audit_log "
                        "WHERE action = 'reads.store' AND agency IN (:a, :b)"
                    ),
                    {"a": A, "b": B},
                )
            ).all()
            # Fewer entries than reads (batched), every read in exactly one entry, each entry of one agency.
            named = [i for e in entries for i in e.object_ids]
            assert sorted(named) == sorted(ids) and len(entries) < len(ids)
            for e in entries:
                assert {ids[i] for i in e.object_ids} == {e.agency} and e.record_count == len(e.object_ids)
                assert e.details["merkle_root"] == merkle.root(list(e.object_ids))  # PostgreSQL's tree is ours
            for read_id, agency in ids.items():
                found = await merkle.read_inclusion_proof(conn, read_id)
                assert found is not None and found["agency"] == agency
                assert merkle.verify(read_id, found["proof"], found["merkle_root"])
                assert not merkle.verify(str(uuid.uuid4()), found["proof"], found["merkle_root"])
            assert await merkle.read_inclusion_proof(conn, str(uuid.uuid4())) is None
            assert (await verify_chain(conn)).ok
    finally:
        await engine.dispose()


async def test_an_agents_import_round_is_one_entry_per_agency_proving_its_reads(system: System) -> None:
    tokens = {}
    for agency in (A, B):
        admin = person(system, "admin", agency)["Authorization"].removeprefix("Bearer ")
        tokens[agency] = (await register(system.ingest, admin, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
    at = now_ms()
    for i in range(3):
        for n, agency in enumerate((A, B)):
            posted = await post(system.ingest, tokens[agency], results_body(f"G{i}{n}{_TAG}", at - i * 1000))
            assert posted.status_code == 200, posted.text
    await drain(system.ingest_app)
    stored = await rows(
        system.settings, "SELECT id::text AS id, agency FROM ingest.reads WHERE agency IN (:a, :b) AND plate LIKE :p",
        a=A, b=B, p=f"G__{_TAG}",
    )  # fmt: skip
    assert len(stored) == 6
    engine = create_async_engine(system.settings.database_url)
    try:
        async with engine.connect() as conn:
            seqs = set()
            for read in stored:
                found = await merkle.read_inclusion_proof(conn, read.id)
                assert found is not None and found["agency"] == read.agency, read
                assert merkle.verify(read.id, found["proof"], found["merkle_root"])
                seqs.add(found["seq"])
            actors = (
                await conn.execute(
                    text("SELECT DISTINCT actor FROM audit.audit_log WHERE seq = ANY(:s)"), {"s": sorted(seqs)}
                )
            ).scalars()
            assert list(actors) == ["ingest.agent_import"] and len(seqs) < len(stored)
    finally:
        await engine.dispose()


async def test_each_hit_raised_and_each_hit_delivered_is_an_entry_under_its_agency(
    system: System,
    bca_server,  # type: ignore[no-untyped-def]
) -> None:
    plate = f"Q{_TAG}"
    bca_server.publish(extract([row(f"V{uuid.uuid4().int % 10**9:09d}", plate)]))
    version = await system.sync()
    car_a, car_b = officer(system, A, "CAR-H1"), officer(system, B, "CAR-H1")
    assert (await car_a.start()).status_code == 201 and (await car_b.start()).status_code == 201

    async def announced() -> bool:  # the list's notice is out first, so A's stream's next event is the hit
        return any(e["payload"].get("version") == version for e in await system.events(car_a))

    await eventually(announced)
    live = asyncio.create_task(
        car_a.client.get(f"/v1/units/{car_a.unit}/stream", params={"max_events": 1}, headers=car_a.headers)
    )
    await asyncio.sleep(0.3)  # A's stream is open (new events only) before the read is posted
    meta_a = car_a.meta(plate=plate, state="MN")
    (hit_a,) = (await car_a.post_read(meta_a)).json()["hits"]
    assert (await car_a.post_read(meta_a)).json()["duplicate"] is True  # a retried read raises no second hit
    (hit_b,) = (await car_b.post_read(car_b.meta(plate=plate, state="MN"))).json()["hits"]
    assert hit_a["hit_id"] in (await asyncio.wait_for(live, 10)).text  # delivered on A's stream
    assert [e["payload"]["hit_id"] for e in await system.events(car_b) if e["kind"] == "hit"] == [hit_b["hit_id"]]

    raised = {r["object_ids"][0]: r for r in await audit_rows(system, "hit.raise") if r["agency"] in (A, B)}
    assert {h: r["agency"] for h, r in raised.items()} == {hit_a["hit_id"]: A, hit_b["hit_id"]: B}
    assert raised[hit_a["hit_id"]]["details"]["read_id"] and raised[hit_a["hit_id"]]["actor"] == "hotlist.match"
    delivered = [r for r in await audit_rows(system, "hit.deliver") if r["agency"] in (A, B)]
    assert sorted((r["agency"], r["object_ids"][0], r["details"]["via"]) for r in delivered) == sorted(
        [(A, hit_a["hit_id"], "stream"), (B, hit_b["hit_id"], "poll")]
    )
    assert all(r["actor"].startswith(f"officer-{r['agency']}-") for r in delivered)  # the officer it reached
