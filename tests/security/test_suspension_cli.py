"""The host's switch (13.824 subd. 6(b)): `alpr agencies suspend` run as an operator would, against the running
system's database, stops agency A's collection (its open shift ends, its car's next read is refused naming the order)
while B collects on; `alpr agencies resume` lets A collect again. Each step is audited under A as `cli:<user>`; a
second suspend, a resume of what is not suspended and a bad argument are refused with the reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest

from alpr.cli import main
from shared.settings import get_settings
from tests.integration.conftest import System
from tests.security.test_two_agencies import audit_rows, officer

_TAG = uuid.uuid4().hex[:5].upper()
A, B = f"MNCA{_TAG}", f"MNCB{_TAG}"


@pytest.fixture
def cli_env(system: System, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    assert system.settings.database_url
    monkeypatch.setenv("ALPR_DATABASE_URL", system.settings.database_url)
    monkeypatch.setenv("ALPR_DATA_DIR", str(system.settings.data_dir))
    monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _alpr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("cli_env")
async def test_the_host_cli_suspends_and_resumes_one_agency(system: System, capsys: pytest.CaptureFixture[str]) -> None:
    car_a, car_b = officer(system, A, "CAR-C1"), officer(system, B, "CAR-C1")
    assert (await car_a.start()).status_code == 201 and (await car_b.start()).status_code == 201

    code, out, err = await _alpr(
        ["agencies", "suspend", "--agency", A, "--order", "CLI-ORDER-9", "--reason", "commissioner's order"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["shifts_ended"] == 1 and json.loads(out)["agency"] == A
    code, _, err = await _alpr(["agencies", "suspend", "--agency", A, "--order", "X", "--reason", "again!"], capsys)
    assert code == 1 and "already suspended" in err
    with pytest.raises(SystemExit) as bad:  # argparse: a reason of one character is refused before any work
        main(["agencies", "suspend", "--agency", A, "--order", "X", "--reason", "x"])
    assert bad.value.code == 2

    await asyncio.sleep(1.1)  # the running ingest's open-shift cache (one second) expires, as in another process
    read_a = await car_a.post_read(car_a.meta(plate="CLI001"))
    assert read_a.status_code == 403 and "CLI-ORDER-9" in read_a.json()["detail"], read_a.text
    assert (await officer(system, A, "CAR-C2").start()).status_code == 403
    assert (await car_b.post_read(car_b.meta(plate="CLI002"))).status_code == 200  # B collects on
    assert A in (await system.ingest.get("/readyz")).json()["warnings"]["collection_suspended"]

    code, out, err = await _alpr(["agencies", "resume", "--agency", B, "--reason", "nothing to lift"], capsys)
    assert code == 1 and "not suspended" in err  # B was never suspended
    code, out, err = await _alpr(["agencies", "resume", "--agency", A, "--reason", "order lifted"], capsys)
    assert code == 0 and json.loads(out)["lifted_at"], err
    car_a2 = officer(system, A, "CAR-C3")
    assert (await car_a2.start()).status_code == 201
    assert (await car_a2.post_read(car_a2.meta(plate="CLI003"))).status_code == 200
    code, out, _ = await _alpr(["agencies", "suspensions", "--agency", A], capsys)
    assert code == 0 and [s["order_reference"] for s in json.loads(out)] == ["CLI-ORDER-9"]

    for action in ("agency.suspend", "agency.suspension_lift", "agency.suspensions"):
        rows = [r for r in await audit_rows(system, action) if r["agency"] in (A, B)]
        assert len(rows) == 1 and rows[0]["agency"] == A and rows[0]["actor"].startswith("cli:"), (action, rows)
