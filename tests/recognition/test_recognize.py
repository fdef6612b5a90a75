"""The recognition API on photos the tests draw: real readings, no plate, bad images, batch, full queue, roles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.recognition.main import create_app
from services.recognition.pipeline import served_options
from shared.plates import confusion_key
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.recognition.render import jpeg, plate_image, png, scene_without_plate
from tests.support.apps import running


@pytest.fixture(scope="module")
async def client(settings: Settings, make_token: TokenFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"recognition_max_image_bytes": 2_000_000}))
    async with running(app) as c:
        c.headers["Authorization"] = f"Bearer {make_token(roles=['service'])}"
        yield c


async def _recognize(client: httpx.AsyncClient, data: bytes, name: str = "car.jpg") -> httpx.Response:
    return await client.post("/v1/recognize", files={"image": (name, data, "image/jpeg")})


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("ABC1234", {}),
        ("KXR482", {"angle": 8.0}),
        ("7HTW519", {"blur": 1.5}),
        ("PZM337", {"plate_width": 110}),
    ],
    ids=["clear", "rotated", "blurred", "small"],
)
async def test_reads_the_plate(client: httpx.AsyncClient, text: str, kwargs: dict[str, float]) -> None:
    image = plate_image(text, **kwargs)  # type: ignore[arg-type]
    resp = await _recognize(client, jpeg(image))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["image"] == {"width": image.shape[1], "height": image.shape[0]}
    assert set(body["timings_ms"]) == {"decode", "locate", "recognize", "second", "total"}
    best = body["plates"][0]
    assert best["plate"] == text
    assert len(best["char_confidences"]) == len(text)
    assert 0.5 < best["confidence"] <= 1.0
    if "plate_width" not in kwargs:  # on a small plate the state name is too small to read, and optional
        assert best["state"] == "MN" and 0 < best["state_confidence"] <= 1
    # The box surrounds the drawn plate's text (the plate sits centred, 55 % down the photo).
    xs = [x for x, _ in best["box"]]
    ys = [y for _, y in best["box"]]
    assert len(best["box"]) == 4
    assert min(xs) < image.shape[1] / 2 < max(xs)
    assert image.shape[0] * 0.5 < sum(ys) / 4 < image.shape[0] * 0.8
    # Alternatives: the beam's next readings that the hot list would look up under another confusion key, only
    # those likely enough (on a clear drawn plate, often none: each costs a chance of a false hit).
    alternatives = [a["plate"] for a in best["alternatives"]]
    keys = [confusion_key(a) for a in alternatives]
    assert text not in alternatives and confusion_key(text) not in keys and len(set(keys)) == len(keys)
    assert all(a["confidence"] >= served_options(()).min_share for a in best["alternatives"])


async def test_vanity_plate_keeps_its_letter_o(client: httpx.AsyncClient) -> None:
    resp = await _recognize(client, png(plate_image("GOPHER", state=None)), "car.png")
    assert resp.status_code == 200
    assert resp.json()["plates"][0]["plate"] == "GOPHER"
    assert resp.json()["plates"][0]["state"] is None


async def test_no_plate_is_an_empty_list(client: httpx.AsyncClient) -> None:
    resp = await _recognize(client, jpeg(scene_without_plate()))
    assert resp.status_code == 200
    assert resp.json()["plates"] == []


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 422, "empty"),
        (b"GIF89a not what we take", 422, "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, 422, "could not be decoded"),
        (b"\xff\xd8\xff" + b"\x00" * 2_000_000, 413, "image larger than"),
        (b"\xff\xd8\xff" + b"\x00" * 2_200_000, 413, "request body larger than"),  # refused before parsing
    ],
    ids=["empty", "gif", "truncated-jpeg", "oversized", "far-oversized"],
)
async def test_bad_images_get_a_clear_4xx(client: httpx.AsyncClient, data: bytes, status: int, words: str) -> None:
    resp = await _recognize(client, data)
    assert resp.status_code == status
    assert words in resp.json()["detail"]


async def test_missing_image_field_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/recognize", files={"photo": ("x.jpg", b"123", "image/jpeg")})
    assert resp.status_code == 422


async def test_batch_answers_each_image_and_fails_bad_ones_alone(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/recognize/batch",
        files=[
            ("images", ("one.jpg", jpeg(plate_image("JFJ4764")), "image/jpeg")),
            ("images", ("broken.jpg", b"not an image", "image/jpeg")),
            ("images", ("empty.jpg", jpeg(scene_without_plate()), "image/jpeg")),
        ],
    )
    assert resp.status_code == 200, resp.text
    one, broken, empty = resp.json()["results"]
    assert one["filename"] == "one.jpg" and one["plates"][0]["plate"] == "JFJ4764"
    assert broken["filename"] == "broken.jpg" and "not a JPEG or PNG" in broken["detail"]
    assert broken["plates"] is None
    assert empty["plates"] == [] and empty["detail"] is None


async def test_roles(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    data = jpeg(scene_without_plate())
    for roles, status in ((["auditor"], 403), (["officer"], 200), (["admin"], 200)):
        headers = {"Authorization": f"Bearer {make_token(roles=roles)}"}
        resp = await client.post("/v1/recognize", files={"image": ("x.jpg", data, "image/jpeg")}, headers=headers)
        assert resp.status_code == status, roles
    resp = await client.post(
        "/v1/recognize", files={"image": ("x.jpg", data, "image/jpeg")}, headers={"Authorization": ""}
    )
    assert resp.status_code == 401


async def test_full_queue_answers_503_with_retry_after(settings: Settings, make_token: TokenFactory) -> None:
    # One worker and no queue: of several photos sent at once, one is read and the others are refused at once.
    app = create_app(settings.model_copy(update={"recognition_workers": 1, "recognition_queue": 0}))
    data = jpeg(plate_image("ABC1234"))
    async with running(app) as c:
        c.headers["Authorization"] = f"Bearer {make_token(roles=['service'])}"
        answers = await asyncio.gather(*(_recognize(c, data) for _ in range(3)))
        codes = sorted(r.status_code for r in answers)
        assert codes[0] == 200 and codes[-1] == 503
        refused = next(r for r in answers if r.status_code == 503)
        assert refused.headers["Retry-After"] == "1"
        assert "queue full" in refused.json()["detail"]
        # The slots come back: a later request is served.
        assert (await _recognize(c, data)).status_code == 200


async def test_exif_orientation_is_applied(client: httpx.AsyncClient) -> None:
    # A camera stores the photo sideways and says so in EXIF (orientation 6: turn 90° clockwise to view).
    import io

    import cv2
    from PIL import Image

    upright = plate_image("LMN567", size=(800, 600))
    sideways = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(cv2.cvtColor(sideways, cv2.COLOR_BGR2RGB)).save(buf, "JPEG", quality=92, exif=exif)
    resp = await _recognize(client, buf.getvalue())
    assert resp.status_code == 200
    assert resp.json()["image"] == {"width": 800, "height": 600}
    assert resp.json()["plates"][0]["plate"] == "LMN567"
