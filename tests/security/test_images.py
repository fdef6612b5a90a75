"""A plate photo's pixel limit fits plate photos (12 Mpx, a 4000x3000 frame): the 38 KB PNG of 6300x6300 that fit
under the old 40 Mpx limit (recognition: +300 MB, 1.9 s of CPU; ingest: stored) is refused on its header by both."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bench.floods import huge_png
from services.ingest.main import create_app as ingest_app
from services.recognition.main import create_app as recognition_app
from shared.bounds import MAX_IMAGE_PIXELS
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import MakeOfficer, ingest_settings
from tests.ingest.conftest import officer_factory as officer_factory  # noqa: F401  (the fixture)
from tests.support.apps import running

BOMB = huge_png(6300)  # 39.7 Mpx declared in a small file


def _frame(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 90).save(buf, "PNG")
    return buf.getvalue()


async def test_recognition_refuses_more_than_a_plate_photo(settings: Settings, make_token: TokenFactory) -> None:
    assert len(BOMB) < 60_000 and 6300 * 6300 > MAX_IMAGE_PIXELS >= 4000 * 3000
    headers = {"Authorization": f"Bearer {make_token(roles=['service'])}"}
    async with running(recognition_app(settings.model_copy(update={"recognition_workers": 1}))) as client:
        resp = await client.post("/v1/recognize", files={"image": ("b.png", BOMB, "image/png")}, headers=headers)
        assert resp.status_code == 422 and "6300x6300" in resp.json()["detail"], resp.text


async def test_ingest_refuses_to_store_more_than_a_plate_photo(
    settings: Settings,
    officer_factory: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    async with running(ingest_app(ingest_settings(settings))) as client:
        make: MakeOfficer = officer_factory(client)
        officer = make()
        assert (await officer.start()).status_code == 201
        refused = await officer.post_read(officer.meta(plate="PIX123"), photo=BOMB)
        assert refused.status_code == 422 and "pixels" in refused.json()["detail"], refused.text
        # The largest real frame (4000x3000) is a plate photo and is stored.
        frame = await officer.post_read(officer.meta(plate="PIX124"), photo=_frame(4000, 3000))
        assert frame.status_code in (200, 202), frame.text
