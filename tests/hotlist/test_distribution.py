"""The lists for the cars: full list gzip with ETag and 304; deltas that turn an old full list into the new one."""

from __future__ import annotations

import csv
import io

import httpx

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, generated, row
from tests.support.apps import running


def _rows(csv_text: str) -> dict[str, list[str | None]]:
    reader = csv.reader(io.StringIO(csv_text))
    next(reader)
    return {r[0]: [v or None for v in r] for r in reader}


async def _full(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, dict[str, list[str | None]]]:
    resp = await client.get("/v1/hotlist/list", headers={**auth, "Accept-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-encoding"] == "gzip"
    return resp.headers["etag"], _rows(resp.text)


async def test_full_list_etag_304_and_deltas_rebuild_the_new_list(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    car = tokens("officer")
    admin = tokens("admin")
    base = generated(400, prefix="DL", seed=21)
    v2_rows = base[:380] + [r.replace(",BLK", ",RED") for r in base[380:390]] + [row("V210000999", "DL9999")]
    v3_rows = v2_rows[50:] + [row("P210000998", "DL9998", "WI")]
    async with running(create_app(hl_settings)) as client:
        versions = []
        fulls = []
        for rows in (base, v2_rows, v3_rows):
            bca.publish(extract(rows))
            versions.append((await client.post("/v1/hotlist/sync", headers=admin)).json()["version"])
            etag, full = await _full(client, car)
            assert etag == f'"hotlist-v{versions[-1]}"'
            fulls.append(full)
            assert len(full) == len(rows)

        # Unchanged list: 304, no body.
        not_modified = await client.get("/v1/hotlist/list", headers={**car, "If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""

        # The car holding v1 applies v1->v3; the car holding v2 applies v2->v3: both end on the full v3 list.
        for start in (0, 1):
            resp = await client.get("/v1/hotlist/delta", params={"since": versions[start]}, headers=car)
            assert resp.status_code == 200, resp.text
            delta = resp.json()
            assert delta["since"] == versions[start] and delta["version"] == versions[2]
            held = dict(fulls[start])
            for nic in delta["removes"]:
                del held[nic]
            for add in delta["adds"]:
                held[add[0]] = add
            assert held == fulls[2]
        # v2->v3: 50 removed, 1 added; a changed row is a remove and an add (v1->v2 colors).
        assert (len(delta["removes"]), len(delta["adds"])) == (50, 1)
        # A delta is far smaller than the full list.
        full_size = len((await client.get("/v1/hotlist/list", headers={**car, "Accept-Encoding": "identity"})).content)
        assert len(resp.content) < full_size

        same = (await client.get("/v1/hotlist/delta", params={"since": versions[2]}, headers=car)).json()
        assert same["adds"] == [] and same["removes"] == []
        newer = await client.get("/v1/hotlist/delta", params={"since": versions[2] + 100}, headers=car)
        assert newer.status_code == 404
        assert (await client.get("/v1/hotlist/list")).status_code == 401

        # A version no longer kept: 410, fetch the full list.
        for seed in (22, 23, 24):
            bca.publish(extract(generated(5, prefix="DM", seed=seed)))
            await client.post("/v1/hotlist/sync", headers=admin)
        gone = await client.get("/v1/hotlist/delta", params={"since": versions[0]}, headers=car)
        assert gone.status_code == 410 and "full list" in gone.json()["detail"]


async def test_the_cars_get_only_the_categories_that_may_alert(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    """A missing person or a protection order stays loaded (the BCA's file) and raises no hit here: the list sent to
    the cars leaves it out too, in the full list and in the deltas."""
    car, admin = tokens("officer"), tokens("admin")
    async with running(create_app(hl_settings)) as client:
        bca.publish(extract([row("V220000001", "CA0001"), row("M220000002", "CA0002")]))
        v1 = (await client.post("/v1/hotlist/sync", headers=admin)).json()["version"]
        _, full = await _full(client, car)
        assert set(full) == {"V220000001"}
        bca.publish(extract([row("V220000001", "CA0001"), row("H220000003", "CA0003"), row("P220000004", "CA0004")]))
        (await client.post("/v1/hotlist/sync", headers=admin)).raise_for_status()
        _, full = await _full(client, car)
        assert set(full) == {"V220000001", "P220000004"}
        delta = (await client.get("/v1/hotlist/delta", params={"since": v1}, headers=car)).json()
        assert [a[0] for a in delta["adds"]] == ["P220000004"] and delta["removes"] == []
