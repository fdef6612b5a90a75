"""Plate proposals independent of the characters: bright rectangles of a plate's shape (issue 27's second opinion on
which region is the plate).

The localizer (locating.py) and the text detector find a plate through its characters; where those are thin,
blurred or touch the plate's frame, neither proposes the plate (wts-lg-000041: a red-framed California plate on a
black car). A US plate is also a light rectangle about twice as wide as tall, lighter than the car around it: local
thresholding (a pixel this much above its neighbourhood's mean) and connected components find such rectangles in a
few ms. Each one is only a candidate: the second reader reads it as a whole plate (its crop is the plate's box,
which is what it was trained on) and its region head and the arbitration judge it.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 1280  # px: searched at most this wide (as the localizer)
# (neighbourhood in px, offset in grey levels): a plate lighter than the car around it by at least this much. One
# threshold, the most permissive measured: three ((61, 10), (61, 25), (101, 15)) cost 22.6 ms of CPU a photo
# against 8.5 and read no plate more on the dev photos (docs/recognition-27.md).
THRESHOLDS = ((61, 10),)
MIN_WIDTH, MAX_WIDTH = 30, 400  # px at MAX_SIDE
MIN_HEIGHT, MAX_HEIGHT = 12, 200
MIN_ASPECT, MAX_ASPECT = 1.4, 3.2  # width / height: a US plate is 2 (12 × 6 in), seen at an angle or cut
MIN_FILL = 0.45  # of its box the rectangle's pixels cover (a plate's light background around dark characters)
MIN_US = 0.5  # the second reader's "United States" probability a proposal's reading needs (second_opinion.py)
SAME = 0.5  # intersection over union at which two proposals are one plate found at two thresholds


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _plausibility(box: np.ndarray) -> float:
    """Best first: well filled, close to a plate's 2:1."""
    x0, y0, x1, y1, fill = box
    aspect = (x1 - x0) / max(y1 - y0, 1e-6)
    return float(fill) - 0.25 * abs(np.log(aspect / 2.0))


def plate_boxes(image: np.ndarray, limit: int = 8) -> list[np.ndarray]:
    """Up to `limit` candidate plates in a BGR photo as quadrilaterals (corners clockwise from top-left, the photo's
    pixels), likeliest first, none the same as another."""
    height, width = image.shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    found: list[np.ndarray] = []
    close = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3))  # the characters' strokes back into the plate
    means: dict[int, np.ndarray] = {}
    for block, offset in THRESHOLDS:
        if block not in means:
            means[block] = cv2.boxFilter(gray, cv2.CV_16S, (block, block), borderType=cv2.BORDER_REPLICATE)
        diff = cv2.subtract(gray, means[block], dtype=cv2.CV_16S)
        binary = cv2.compare(diff, offset, cv2.CMP_GT)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, close)
        count, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 4, cv2.CV_32S, cv2.CCL_BBDT)
        x, y, w, h, area = (stats[1:count, k].astype(np.float64) for k in range(5))
        aspect = w / np.maximum(h, 1)
        keep = (
            (w >= MIN_WIDTH)
            & (w <= MAX_WIDTH)
            & (h >= MIN_HEIGHT)
            & (h <= MAX_HEIGHT)
            & (aspect >= MIN_ASPECT)
            & (aspect <= MAX_ASPECT)
            & (area >= MIN_FILL * w * h)
        )
        for k in np.flatnonzero(keep):
            found.append(np.array([x[k], y[k], x[k] + w[k], y[k] + h[k], area[k] / (w[k] * h[k])]) / [*[scale] * 4, 1])
    found.sort(key=_plausibility, reverse=True)
    kept: list[np.ndarray] = []
    for box in found:
        if all(_iou(box, k) < SAME for k in kept):
            kept.append(box)
            if len(kept) >= limit:
                break
    return [np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], np.float32) for b in kept]


def plate_crop(image: np.ndarray, quad: np.ndarray, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """A proposal's whole box (it is the plate's, not the number's), at the second reader's input size."""
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    h, w = image.shape[:2]
    crop = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if crop.size == 0:
        crop = np.zeros((size[1], size[0], 3), np.uint8)
    return cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
