"""The pipeline's refine step on a drawn photo: the plate read again from its own upscaled region."""

from __future__ import annotations

import numpy as np

from services.recognition.engine import get_engine
from services.recognition.imaging import number_line
from services.recognition.pipeline import Options, plate_likeness, recognize_image
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


def test_number_line_is_the_row_of_characters_not_the_state_name() -> None:
    # The plate region as the refine step sees it: state name above the number, frame around both.
    image = plate_image("7KTR352", plate_width=300)
    region = image[352 - 8 : 352 + 150 + 8, 330 - 8 : 330 + 300 + 8]
    box = number_line(region)
    assert box is not None
    x0, y0, x1, y1 = box
    # The number is drawn at about y 65-105 of the plate (+8 px margin), under the state name (y ~15-35).
    assert 50 <= y0 <= 85 and 110 <= y1 <= 140
    assert x0 <= 60 and x1 >= 250


def test_no_number_line_in_a_plain_region() -> None:
    assert number_line(np.full((60, 200, 3), 200, np.uint8)) is None


def test_plate_likeness_puts_a_plate_above_a_phone_number_or_a_word() -> None:
    plate = plate_likeness("1AMW240", 0.9, 40, 40)
    assert plate > plate_likeness("3768750", 0.95, 40, 40)  # digits only: a phone number
    assert plate > plate_likeness("VISIT", 0.99, 40, 40)  # letters only: a sign
    assert plate > plate_likeness("1AMW", 0.99, 40, 40)  # too short: characters lost
    assert plate > plate_likeness("1AMW240", 0.9, 20, 40)  # the same text on a smaller line
