from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from shared.settings import Settings
from shared.storage import LocalStore, ObjectNotFound, ObjectStore, create_store


@pytest.fixture(params=["s3", "local"])
async def store(
    request: pytest.FixtureRequest, settings: Settings, local_settings: Settings
) -> AsyncIterator[ObjectStore]:
    chosen = create_store(settings if request.param == "s3" else local_settings)
    assert chosen.name == request.param
    await chosen.ping()
    yield chosen
    await chosen.delete_prefix("t/")


async def test_round_trip_list_and_delete(store: ObjectStore) -> None:
    photo = b"\xff\xd8\xff" + bytes(range(256)) * 40
    await store.put("t/2026/11/25/a.jpg", photo, "image/jpeg")
    await store.put("t/2026/11/25/b.jpg", b"b", "image/jpeg")
    await store.put("t/2026/11/26/c.jpg", b"c", "image/jpeg")

    assert await store.get("t/2026/11/25/a.jpg") == photo
    assert await store.exists("t/2026/11/25/b.jpg")
    assert await store.list("t/2026/11/25/") == ["t/2026/11/25/a.jpg", "t/2026/11/25/b.jpg"]

    await store.delete("t/2026/11/25/b.jpg")
    assert not await store.exists("t/2026/11/25/b.jpg")

    # With their last-modified times (the orphan purge's grace): just written, in UTC.
    listed = await store.list_objects("t/2026/11/25/")
    assert [o.key for o in listed] == ["t/2026/11/25/a.jpg"]
    assert abs((datetime.now(UTC) - listed[0].last_modified).total_seconds()) < 60

    # Deleting a day is deleting a prefix; the next day stays.
    assert await store.delete_prefix("t/2026/11/25/") == 1
    assert await store.list("t/") == ["t/2026/11/26/c.jpg"]


async def test_missing_object_is_a_clear_error(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as info:
        await store.get("t/nope/missing.jpg")
    assert "t/nope/missing.jpg" in str(info.value)


async def test_bad_keys_are_refused(store: ObjectStore) -> None:
    for key in ("", "/abs", "t/../escape", "t/a\\b"):
        with pytest.raises(ValueError):
            await store.put(key, b"x")


async def test_presigned_link_gives_the_object(store: ObjectStore) -> None:
    await store.put("t/link/p.jpg", b"photo", "image/jpeg")
    url = await store.presigned_url("t/link/p.jpg", expires_s=60)
    if isinstance(store, LocalStore):
        # The folder driver signs links that the access service checks.
        query = dict(part.split("=") for part in url.split("?")[1].split("&"))
        assert store.links.verify("t/link/p.jpg", int(query["expires"]), query["signature"])
        assert not store.links.verify("t/link/other.jpg", int(query["expires"]), query["signature"])
        assert not store.links.verify("t/link/p.jpg", 1, store.links.sign("t/link/p.jpg", 1))
    else:
        async with httpx.AsyncClient() as client:
            resp = await client.get(url)
        assert resp.status_code == 200 and resp.content == b"photo"
