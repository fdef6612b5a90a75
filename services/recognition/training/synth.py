"""Synthetic US plates drawn with OpenCV, cut the way the pipeline cuts text lines: training data for the plate head.

Each sample is a plate (number, state name, slogan, stickers, bolts, an emblem or a dash between characters, a
dealer frame), photographed (perspective, blur, low resolution, noise, JPEG, night), then cropped around its number
line with the detector's imprecision (corners jittered, margins like `imaging.crop_line`'s). Only OpenCV's own
Hershey fonts are used, so the same seed draws the same samples on any machine.
"""

from __future__ import annotations

import string
from typing import Any

import cv2
import numpy as np

from services.recognition import imaging

DIGITS = string.digits
LETTERS = string.ascii_uppercase.replace("O", "")  # US serials print O and 0 alike; labels use 0
# Serial formats (D digit, L letter, V vanity letter or digit) seen on US plates, weighted by how common they are.
FORMATS = [
    ("DLLLDDD", 6), ("LLLDDDD", 6), ("DDDLLL", 6), ("LLLDDD", 4), ("LLDDDD", 2), ("DLLDDD", 2),
    ("DDDDLL", 1), ("LLLDDDL", 1), ("DDLLDDD", 1), ("LDDDDD", 1), ("DDDDDD", 1), ("LLDDDDD", 1),
    ("DLDDDD", 1), ("LLLLDDD", 1), ("VVVVV", 1), ("VVVVVV", 1), ("VVVVVVV", 1), ("LLLLLL", 1),
]  # fmt: skip
STATES = [
    "MINNESOTA", "CALIFORNIA", "TEXAS", "WASHINGTON", "ARIZONA", "OREGON", "NEVADA", "FLORIDA", "OHIO", "IOWA",
    "ILLINOIS", "NEW YORK", "COLORADO", "GEORGIA", "UTAH", "IDAHO", "MONTANA", "KANSAS", "MICHIGAN", "VIRGINIA",
]  # fmt: skip
SLOGANS = [
    "10,000 LAKES", "EXPLORE MINNESOTA", "DMV.CA.GOV", "GRAND CANYON STATE", "EVERGREEN STATE", "THE LONE STAR STATE",
    "SUNSHINE STATE", "LAND OF LINCOLN", "EMPIRE STATE", "FAMOUS POTATOES", "BIG SKY COUNTRY", "GREAT LAKES",
]  # fmt: skip
FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_TRIPLEX]
PLATE_W, PLATE_H = 600, 300  # drawing canvas, 2:1 like a 12 x 6 inch plate


def plate_text(rng: np.random.Generator) -> str:
    formats, weights = zip(*FORMATS, strict=True)
    fmt = formats[rng.choice(len(formats), p=np.array(weights) / sum(weights))]
    pools = {"D": DIGITS, "L": LETTERS, "V": LETTERS + DIGITS}
    return "".join(pools[k][rng.integers(len(pools[k]))] for k in fmt)


def _color(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))  # type: ignore[return-value]


def _centered_text(
    canvas: np.ndarray, text: str, y: int, height: int, font: int, color: tuple[int, int, int], thickness: int
) -> None:
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = height / max(th, 1)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    if tw > canvas.shape[1] * 0.95:
        scale *= canvas.shape[1] * 0.95 / tw
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    cv2.putText(canvas, text, ((canvas.shape[1] - tw) // 2, y), font, scale, color, thickness, cv2.LINE_AA)


def _number(text: str, rng: np.random.Generator, ink: tuple[int, int, int], paper: tuple[int, int, int]) -> np.ndarray:
    """The serial alone on its own strip, characters condensed like plate fonts, maybe with a gap, dash or emblem."""
    font = FONTS[rng.integers(len(FONTS))]
    thickness = int(rng.integers(7, 16))
    glyph_h = 120
    scale = glyph_h / cv2.getTextSize("8", font, 1.0, thickness)[0][1]
    gap_at = int(rng.integers(2, len(text) - 1)) if rng.random() < 0.45 else -1
    gap_kind = rng.choice(["space", "dash", "emblem", "dot"])
    pieces: list[np.ndarray] = []
    pad = int(rng.integers(6, 22))
    for i, ch in enumerate(text):
        (cw, _), _ = cv2.getTextSize(ch, font, scale, thickness)
        cell = np.full((glyph_h + 40, cw + pad, 3), paper, np.uint8)
        cv2.putText(cell, ch, (pad // 2, glyph_h + 20), font, scale, ink, thickness, cv2.LINE_AA)
        if i == gap_at:
            sep = np.full((glyph_h + 40, int(rng.integers(30, 70)), 3), paper, np.uint8)
            cx, cy = sep.shape[1] // 2, sep.shape[0] // 2
            if gap_kind == "dash":
                cv2.line(sep, (cx - 12, cy), (cx + 12, cy), ink, max(4, thickness // 2))
            elif gap_kind == "emblem":  # a state emblem: a filled shape of another colour, as tall as half a glyph
                color = _color(rng, 0, 255)
                if rng.random() < 0.5:
                    cv2.circle(sep, (cx, cy), int(rng.integers(14, 28)), color, -1, cv2.LINE_AA)
                else:
                    pts = np.array([[cx, cy - 30], [cx + 18, cy + 20], [cx - 18, cy + 20]], np.int32)
                    cv2.fillPoly(sep, [pts], color, cv2.LINE_AA)
            elif gap_kind == "dot":
                cv2.circle(sep, (cx, cy), 6, ink, -1, cv2.LINE_AA)
            pieces.append(sep)
        pieces.append(cell)
    strip = np.concatenate(pieces, axis=1)
    condense = rng.uniform(0.55, 1.0)  # plate fonts are narrow
    return cv2.resize(strip, (max(8, int(strip.shape[1] * condense)), strip.shape[0]), interpolation=cv2.INTER_AREA)


def render_plate(text: str, rng: np.random.Generator, number_strip: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """A plate face on a PLATE_W x PLATE_H canvas and the quad of its number line (the serial drawn by
    `number_strip(text, rng, ink, paper)` if given, else with a Hershey font)."""
    if rng.random() < 0.15:  # reversed: light characters on a dark plate
        paper, ink = _color(rng, 10, 90), _color(rng, 200, 256)
    else:
        paper, ink = _color(rng, 180, 256), _color(rng, 0, 110)
    plate = np.full((PLATE_H, PLATE_W, 3), paper, np.uint8)
    if rng.random() < 0.5:  # a printed background: a gradient or a faint scene
        ramp = np.linspace(0, rng.uniform(-60, 60), PLATE_W, dtype=np.float32)[None, :, None]
        plate = np.clip(plate.astype(np.float32) + ramp, 0, 255).astype(np.uint8)
    accent = _color(rng, 0, 200)
    state = STATES[rng.integers(len(STATES))]
    state_y, state_h = int(rng.integers(48, 70)), int(rng.integers(26, 44))
    _centered_text(plate, state, state_y, state_h, FONTS[rng.integers(4)], accent, 3)
    if rng.random() < 0.8:
        slogan = SLOGANS[rng.integers(len(SLOGANS))]
        _centered_text(plate, slogan, PLATE_H - int(rng.integers(14, 30)), int(rng.integers(16, 28)), 0, accent, 2)
    number = (number_strip or _number)(text, rng, ink, paper)
    nh = int(PLATE_H * rng.uniform(0.38, 0.55))
    nw = int(number.shape[1] * nh / number.shape[0])
    if nw > PLATE_W * 0.94:
        nw = int(PLATE_W * 0.94)
    number = cv2.resize(number, (nw, nh), interpolation=cv2.INTER_AREA)
    x0 = (PLATE_W - nw) // 2 + int(rng.integers(-15, 16))
    x0 = int(np.clip(x0, 2, PLATE_W - nw - 2))
    y0 = (PLATE_H - nh) // 2 + int(rng.integers(-10, 25))
    plate[y0 : y0 + nh, x0 : x0 + nw] = number
    for _ in range(int(rng.integers(0, 3))):  # registration stickers in the corners
        sx = int(rng.choice([rng.integers(5, 60), rng.integers(PLATE_W - 110, PLATE_W - 55)]))
        sy = int(rng.choice([rng.integers(5, 40), rng.integers(PLATE_H - 80, PLATE_H - 45)]))
        cv2.rectangle(plate, (sx, sy), (sx + 50, sy + 35), _color(rng, 0, 256), -1)
        cv2.putText(plate, str(rng.integers(10, 99)), (sx + 5, sy + 28), 0, 0.9, (0, 0, 0), 2, cv2.LINE_AA)
    for bx in (PLATE_W // 4, 3 * PLATE_W // 4):  # bolts
        if rng.random() < 0.6:
            cv2.circle(plate, (bx, int(rng.integers(18, 34))), 9, (150, 150, 150), -1, cv2.LINE_AA)
    if rng.random() < 0.35:  # a dealer frame over the bottom edge
        fh = int(rng.integers(30, 60))
        plate[PLATE_H - fh :] = _color(rng, 0, 60)
        _centered_text(plate, "AUTO SALES", PLATE_H - fh // 3, fh // 2, 0, (220, 220, 220), 2)
    cv2.rectangle(plate, (0, 0), (PLATE_W - 1, PLATE_H - 1), accent, int(rng.integers(2, 10)))
    quad = np.array([[x0, y0], [x0 + nw, y0], [x0 + nw, y0 + nh], [x0, y0 + nh]], np.float32)
    return plate, quad


def photograph(plate: np.ndarray, quad: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The plate as a camera sees it: in a scene, tilted, at low resolution, blurred, noisy, compressed."""
    width = int(rng.uniform(70, 330))  # the plate's width in the photo, pixels
    height = width // 2
    border = width // 2
    scene_w, scene_h = width + 2 * border, height + 2 * border
    scene = np.full((scene_h, scene_w, 3), _color(rng, 0, 256), np.uint8)
    scene = cv2.add(scene, rng.integers(0, 50, scene.shape, dtype=np.uint8))
    src = np.array([[0, 0], [PLATE_W, 0], [PLATE_W, PLATE_H], [0, PLATE_H]], np.float32)
    jitter = rng.uniform(-0.08, 0.08, (4, 2)) * [width, height]
    skew = rng.uniform(-0.12, 0.12) * height  # rotation-like: one side higher than the other
    dst = np.array(
        [[border, border - skew], [border + width, border + skew], [border + width, border + height + skew],
         [border, border + height - skew]], np.float32,
    ) + jitter.astype(np.float32)  # fmt: skip
    matrix = cv2.getPerspectiveTransform(src, dst)
    mask = cv2.warpPerspective(np.full(plate.shape[:2], 255, np.uint8), matrix, (scene_w, scene_h))
    warped = cv2.warpPerspective(plate, matrix, (scene_w, scene_h), flags=cv2.INTER_AREA)
    scene[mask > 0] = warped[mask > 0]
    number = cv2.perspectiveTransform(quad[None], matrix)[0]
    if rng.random() < 0.6:
        scene = cv2.GaussianBlur(scene, (0, 0), rng.uniform(0.3, 1.6))
    if rng.random() < 0.2:  # motion blur
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        scene = cv2.filter2D(scene, -1, kernel)
    light = rng.uniform(0.35, 1.3) if rng.random() < 0.3 else rng.uniform(0.75, 1.15)
    scene = np.clip(scene.astype(np.float32) * light + rng.uniform(-25, 25), 0, 255)
    scene = np.clip(scene + rng.normal(0, rng.uniform(0, 12), scene.shape), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 95))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR), number


def line_crop(photo: np.ndarray, number: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The number line cut as the pipeline would: a detector's quad (jittered), `crop_line` with its margins."""
    w, h = imaging.quad_size(number)
    jitter = rng.normal(0, 1, (4, 2)) * [0.03 * w, 0.08 * h]
    margins = [(0.08, 0.15), (0.02, 0.05), (0.15, 0.25), (0.0, 0.0), (0.3, 0.35)]
    mx, my = margins[rng.integers(len(margins))]
    crop = imaging.crop_line(photo, number + jitter.astype(np.float32), margin_x=mx, margin_y=my)
    variant = rng.random()
    if variant < 0.15:
        crop = imaging.equalized(crop)
    elif variant < 0.3:
        crop = imaging.sharpened(crop)
    return crop


def sample(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One training line: its 48-px-high crop and its label."""
    text = plate_text(rng)
    plate, quad = render_plate(text, rng)
    photo, number = photograph(plate, quad, rng)
    return line_crop(photo, number, rng), text  # no letter O is drawn: labels are already in the plates' normal form
