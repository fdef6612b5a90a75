"""A small file declaring a huge image is refused on its header's dimensions, before OpenCV decodes (and allocates)
it: recognition answers 422 at once, and the process does not grow by the decoded size."""

from __future__ import annotations

import resource
import time
from collections.abc import AsyncIterator

import pytest

from bench.floods import huge_png
from services.recognition.imaging import MAX_PIXELS, UndecodableImage, decode
from services.recognition.main import create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.support.apps import running


def test_a_huge_image_is_refused_on_its_header() -> None:
    data = huge_png(9000)  # 81 M pixels declared in a small file (243 MB once decoded to BGR)
    assert len(data) < 200_000 and 9000 * 9000 > MAX_PIXELS
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(UndecodableImage, match="9000x9000"):
        decode(data)
    assert time.perf_counter() - started < 0.5
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 50_000  # a decode would have taken 243 MB


async def test_recognition_answers_422_for_it(settings: Settings, make_token: TokenFactory) -> None:
    async with running(create_app(settings.model_copy(update={"recognition_workers": 1}))) as client:
        resp = await client.post(
            "/v1/recognize",
            files={"image": ("big.png", huge_png(9000), "image/png")},
            headers={"Authorization": f"Bearer {make_token(roles=['service'])}"},
        )
    assert resp.status_code == 422 and "too large" in resp.json()["detail"], resp.text


async def test_an_oversized_chunked_upload_is_refused_while_it_streams(
    settings: Settings, make_token: TokenFactory
) -> None:
    pulled = 0

    async def upload() -> AsyncIterator[bytes]:  # multipart, chunked (no Content-Length), 64 MB of "image"
        nonlocal pulled
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n\xff\xd8\xff'
        for _ in range(64):
            pulled += 1
            yield b"\x00" * (1024 * 1024)

    small = {"recognition_workers": 1, "recognition_max_image_bytes": 1024 * 1024, "recognition_max_batch": 2}
    async with running(create_app(settings.model_copy(update=small))) as client:
        resp = await client.post(
            "/v1/recognize",
            content=upload(),
            headers={
                "Authorization": f"Bearer {make_token(roles=['service'])}",
                "Content-Type": "multipart/form-data; boundary=b",
            },
        )
    assert resp.status_code == 413, resp.text
    assert pulled <= 4  # stopped near the service's limit (2 MB and the form), not spooled whole
