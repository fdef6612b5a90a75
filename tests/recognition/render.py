"""Plate photos the tests draw themselves with OpenCV: a plate on a car-coloured, textured background."""

from __future__ import annotations

import cv2
import numpy as np


def plate_image(
    text: str,
    *,
    state: str | None = "MINNESOTA",
    size: tuple[int, int] = (960, 640),
    plate_width: int = 300,
    angle: float = 0.0,
    blur: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width, height = size
    image = np.full((height, width, 3), (70, 60, 120), np.uint8)
    image = cv2.add(image, rng.integers(0, 40, (height, width, 3), dtype=np.uint8))
    cv2.rectangle(image, (0, int(height * 0.75)), (width, height), (40, 40, 40), -1)  # bumper

    plate_h = plate_width // 2
    plate = np.full((plate_h, plate_width, 3), 245, np.uint8)
    cv2.rectangle(plate, (2, 2), (plate_width - 3, plate_h - 3), (60, 60, 60), max(1, plate_width // 100))
    scale = plate_width / 300
    if state:
        (tw, _), _ = cv2.getTextSize(state, cv2.FONT_HERSHEY_DUPLEX, 0.8 * scale, 1)
        cv2.putText(
            plate, state, ((plate_width - tw) // 2, int(32 * scale)), cv2.FONT_HERSHEY_DUPLEX, 0.8 * scale,
            (120, 40, 20), max(1, int(2 * scale)), cv2.LINE_AA,
        )  # fmt: skip
    font_scale = 2.2 * scale * min(1.0, 6 / max(len(text), 1))
    thickness = max(2, int(6 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    cv2.putText(
        plate, text, ((plate_width - tw) // 2, (plate_h + th) // 2 + int(10 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
        font_scale, (20, 20, 20), thickness, cv2.LINE_AA,
    )  # fmt: skip

    x0, y0 = (width - plate_width) // 2, int(height * 0.55)
    image[y0 : y0 + plate_h, x0 : x0 + plate_width] = plate
    if angle:
        matrix = cv2.getRotationMatrix2D((x0 + plate_width / 2, y0 + plate_h / 2), angle, 1.0)
        image = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return image


def scene_without_plate(size: tuple[int, int] = (640, 480), seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 6)
    cv2.circle(image, (size[0] // 2, size[1] // 2), size[1] // 4, (30, 140, 30), -1)
    return image


def jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()
