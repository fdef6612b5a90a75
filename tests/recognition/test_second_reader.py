"""The second reader (fast-plate-ocr's recognizer, shipped in the repository): its weights are checked by SHA-256
and a wrong file refuses to start the service; it reads a plate the test draws; its reading reaches the API."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.recognition.main import create_app
from services.recognition.second_opinion import distinct_regions
from services.recognition.second_reader import WEIGHTS, WEIGHTS_SHA256, PlateReader, WeightsMismatch, sha256_of, verify
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.recognition.render import jpeg, plate_image
from tests.support.apps import running


def test_the_shipped_weights_are_the_checked_ones_with_their_license() -> None:
    assert sha256_of(WEIGHTS) == WEIGHTS_SHA256
    assert verify(WEIGHTS)[:4] and (WEIGHTS.parent / "LICENSE").read_text().startswith("MIT")
    notice = (Path(__file__).parents[2] / "THIRD_PARTY_NOTICES.md").read_text()
    assert "fast-plate-ocr" in notice and WEIGHTS_SHA256 in notice


def test_a_changed_or_missing_file_is_refused(tmp_path: Path) -> None:
    changed = tmp_path / "model.onnx"
    data = bytearray(WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit pattern flipped: same size, another file
    changed.write_bytes(bytes(data))
    with pytest.raises(WeightsMismatch, match="SHA-256"):
        PlateReader(changed)
    with pytest.raises(WeightsMismatch, match="missing"):
        PlateReader(tmp_path / "absent.onnx")


async def test_the_service_refuses_to_start_with_a_wrong_file(tmp_path: Path, settings: Settings) -> None:
    wrong = tmp_path / "cct_xs_v2_global.onnx"
    shutil.copy(WEIGHTS, wrong)
    with wrong.open("ab") as stream:
        stream.write(b"\0")  # a file that still loads, but not the one shipped
    app = create_app(settings.model_copy(update={"recognition_second_reader_weights": wrong}))
    with pytest.raises(WeightsMismatch):
        async with running(app):
            pass


@pytest.mark.parametrize("text", ["KXR482", "7HTW519", "ABC1234"])
def test_it_reads_a_plate_it_is_shown(text: str) -> None:
    image = plate_image(text, plate_width=300)
    # The number's box as the pipeline gives it: the drawn characters' extent, found from the dark pixels.
    plate = image[int(640 * 0.55) : int(640 * 0.55) + 150, 330:630]
    ys, xs = np.nonzero(plate.min(axis=2) < 60)
    inner = (ys > 45) & (ys < 140) & (xs > 6) & (xs < 294)
    x0, x1 = xs[inner].min() + 330, xs[inner].max() + 330
    y0, y1 = ys[inner].min() + int(640 * 0.55), ys[inner].max() + int(640 * 0.55)
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    (reading,) = PlateReader().read_regions(image, [quad])
    assert reading.text == text
    assert reading.confidence > 0.5 and reading.likelihood(text) == pytest.approx(reading.confidence)
    assert reading.likelihood("ZZZZZZ") < 0.2


def test_a_line_found_twice_is_read_once() -> None:
    a = np.array([[10, 10], [110, 10], [110, 40], [10, 40]], np.float32)
    b = a + 3
    c = a + 200
    assert [q.tolist() for q in distinct_regions([a, b, c], 5)] == [a.tolist(), c.tolist()]
    assert len(distinct_regions([a, c], 1)) == 1


@pytest.fixture(scope="module")
async def client(settings: Settings, make_token: TokenFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as c:
        c.headers["Authorization"] = f"Bearer {make_token(roles=['service'])}"
        yield c


async def test_the_answer_says_both_readers_agree(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/recognize", files={"image": ("car.jpg", jpeg(plate_image("KXR482")), "image/jpeg")})
    assert resp.status_code == 200, resp.text
    best = resp.json()["plates"][0]
    assert (best["plate"], best["agreement"]) == ("KXR482", "both")
    assert best["readings"] == {"first": "KXR482", "second": "KXR482"}
    assert resp.json()["timings_ms"]["second"] > 0
