"""The pipeline's refine step on a drawn photo: the plate read again from its own upscaled region."""

from __future__ import annotations

from services.recognition.engine import get_engine
from services.recognition.pipeline import Options, recognize_image
from tests.recognition.render import plate_image


def test_refined_reading_boxes_the_number_in_photo_pixels() -> None:
    # A small plate (110 px wide in a 960 x 640 photo): the refine step upscales its region before reading it.
    image = plate_image("PZM337", plate_width=110)
    best = recognize_image(get_engine(), image, Options(refine=1)).plates[0]
    assert best.plate == "PZM337"
    # The plate occupies x 425-535, y 352-407: the refined box must be mapped back into the photo, on the number.
    xs = [x for x, _ in best.box]
    ys = [y for _, y in best.box]
    assert 415 <= min(xs) < 480 < max(xs) <= 545
    assert 352 <= min(ys) < 385 < max(ys) <= 412
