"""A fast plate localizer: rows of character-sized blobs, found with OpenCV in ~25-40 ms of CPU.

The text detector on the whole photo is most of the OCR time (about 200 ms of CPU at 640 px on one core, where
the plate is some 20 px tall); a plate's number is a row of 4 to 10 dark-on-light blobs of one height, which local
thresholding and connected components find at full resolution for a fraction of that. The rows found are only
candidates: the pipeline reads them and keeps a reading only when it is a sure plate (`pipeline._located`);
otherwise it falls back to the detector.

Several thresholds are tried because one never suits every plate: at a low contrast offset the characters merge with
the plate's frame or a dirty background; at a high one, faded characters break up.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE = 1280  # px: the photo is searched at most this wide (plates are some 7 % of the width in car photos)
BLOCK = 31  # px: adaptive threshold neighbourhood, about one character's height at this scale
OFFSETS = (3, 8, 15, 25)  # adaptive threshold offsets (grey levels): low for faint plates, high for busy ones
MIN_HEIGHT, MAX_HEIGHT = 8, 90  # px: a character's height at MAX_SIDE
MIN_ROW, MAX_ROW = 4, 10  # characters in a plate number's row (US serials are 5-8; a blob can split or merge)
LENGTH_WEIGHT, HEIGHT_WEIGHT = 1.0, 5.0  # a row's plate evidence (`_row`), chosen on fold A
# Also light characters on a dark plate: measured on fold A, half the cost and no plate more in the top five (the
# text detector, when no row is sure, reads those).
LIGHT_ON_DARK = False
MAX_WIDTH = 1.8  # a blob's width in heights: 1.8 lets two touching characters in (1.8 and 2.2 tie on fold A)
REACH = 1.5  # the widest gap between two characters of a row, in character heights (a space, a bolt, an emblem)


@dataclass(frozen=True)
class Row:
    """A candidate plate number: the box around its blobs in the photo's pixels, how many, their median height."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    blobs: int
    height: float
    score: float
    center: tuple[float, float] = (0.0, 0.0)  # of the characters' centres
    slope: float = 0.0  # of the line through the characters' centres (dy/dx): a tilted plate

    def quad(self, left: float, right: float, above: float, below: float) -> np.ndarray:
        """The parallelogram along the row from x `left` to `right`, from `above` px over the characters' centre
        line to `below` px under it (negative: the other side), corners clockwise from top-left."""
        cx, cy = self.center
        corners = []
        for x, dy in ((left, -above), (right, -above), (right, below), (left, below)):
            corners.append((x, cy + self.slope * (x - cx) + dy))
        return np.array(corners, np.float32)


def _blobs(binary: np.ndarray) -> np.ndarray:
    """Character-shaped components (x, y, w, h), sorted by x: no wider than two touching characters, neither a speck
    nor a frame edge."""
    # BBDT: the same components and statistics as OpenCV's default (Spaghetti) in half its CPU (measured: 2.7 against
    # 5.2 ms per threshold on a 1280 px photo, one thread; docs/recognition-cpu.md).
    count, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_BBDT)
    x, y, w, h, area = stats[1:count].T
    fill = area / np.maximum(w * h, 1)
    keep = (h >= MIN_HEIGHT) & (h <= MAX_HEIGHT) & (w >= 2) & (w <= MAX_WIDTH * h) & (fill >= 0.15) & (fill <= 0.9)
    found = stats[1:count][keep, :4]
    return found[np.argsort(found[:, 0], kind="stable")]


PAIRS_PER_STEP = 1 << 20  # neighbour pairs compared at once (bounds the memory a photo full of specks takes)


def _rows(blobs: np.ndarray) -> list[np.ndarray]:
    """Blobs chained left to right into rows: a neighbour of similar height, on the same line, within 1.5 heights."""
    n = len(blobs)
    x, y, w, h = (blobs[:, k].astype(np.float64) for k in range(4))
    cy = y + h / 2
    # Each blob's candidate neighbours are the next ones by x up to its reach (blobs are sorted by x): every such
    # pair compared at once with numpy, not one by one in Python (on a busy scene, thousands of blobs and most of
    # the localizer's time; docs/recognition-cpu.md).
    end = np.searchsorted(x, x + w + REACH * h, side="right")
    counts = np.maximum(end - np.arange(1, n + 1), 0)
    firsts = np.cumsum(counts) - counts  # where each blob's pairs start in the flat list of pairs
    edges: list[tuple[np.ndarray, np.ndarray]] = []
    start = 0
    while start < n:
        stop = start + 1
        budget = counts[start]
        while stop < n and budget + counts[stop] <= PAIRS_PER_STEP:
            budget += counts[stop]
            stop += 1
        chunk = np.arange(start, stop)
        i = np.repeat(chunk, counts[start:stop])
        j = i + 1 + (np.arange(len(i)) - np.repeat(firsts[start:stop] - firsts[start], counts[start:stop]))
        ok = (
            (np.abs(h[j] - h[i]) <= 0.2 * np.maximum(h[i], h[j]))
            & (np.abs(cy[j] - cy[i]) <= 0.25 * h[i])
            & (x[j] >= x[i] + 0.5 * w[i])
        )
        edges.append((i[ok], j[ok]))
        start = stop
    parent = list(range(n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for left, right in edges:
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(root(k), []).append(k)
    return [blobs[g] for g in groups.values() if MIN_ROW <= len(g) <= MAX_ROW]


def _row(blobs: np.ndarray, scale: float) -> Row:
    """A row and its plate evidence: 5 to 8 characters (any count in that range as likely), of one height."""
    x, y, w, h = (blobs[:, k].astype(np.float64) for k in range(4))
    median = float(np.median(h))
    n = len(blobs)
    score = 6.0 - LENGTH_WEIGHT * (max(0, 5 - n) + max(0, n - 8)) - HEIGHT_WEIGHT * float(np.std(h)) / median
    box = (x.min() / scale, y.min() / scale, (x + w).max() / scale, (y + h).max() / scale)
    cx, cy = x + w / 2, y + h / 2
    slope = float(np.polyfit(cx, cy, 1)[0]) if np.ptp(cx) > 0 else 0.0
    center = (float(cx.mean()) / scale, float(cy.mean()) / scale)
    return Row(box, n, median / scale, score, center, slope)


def plate_rows(image: np.ndarray, limit: int = 5) -> list[Row]:
    """The `limit` likeliest plate-number rows in a BGR photo, best first, none inside another."""
    height, width = image.shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    # OpenCV's adaptive mean threshold at each offset, its neighbourhood mean computed once for all of them (the
    # same pixels: dark where the grey level is at most mean - offset; ~2.6 ms less CPU per photo).
    mean = cv2.boxFilter(
        gray, -1, (BLOCK, BLOCK), normalize=True, borderType=cv2.BORDER_REPLICATE | cv2.BORDER_ISOLATED
    )
    diff = cv2.subtract(gray, mean, dtype=cv2.CV_16S)
    found: list[Row] = []
    for offset in OFFSETS:
        binaries = [cv2.compare(diff, -offset, cv2.CMP_LE)]
        if LIGHT_ON_DARK:
            binaries.append(cv2.compare(diff, -offset, cv2.CMP_GT))
        for binary in binaries:
            for row in _rows(_blobs(binary)):
                found.append(_row(row, scale))
    found.sort(key=lambda r: r.score, reverse=True)
    kept: list[Row] = []
    for row in found:
        cx, cy = (row.box[0] + row.box[2]) / 2, (row.box[1] + row.box[3]) / 2
        if any(k.box[0] <= cx <= k.box[2] and k.box[1] <= cy <= k.box[3] for k in kept):
            continue  # the same line, found at another threshold
        kept.append(row)
        if len(kept) >= limit:
            break
    return kept
