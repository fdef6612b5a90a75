"""Image work in OpenCV: decoding, crops of text lines with a margin and perspective correction, enhancement."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.bounds import MAX_IMAGE_PIXELS
from shared.errors import Unprocessable

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = MAX_IMAGE_PIXELS  # refused beyond this on the header, before decoding (decompression bombs)


class UndecodableImage(Unprocessable):
    pass


def decode(data: bytes) -> np.ndarray:
    """JPEG or PNG bytes → BGR pixels, turned upright by the EXIF orientation (cv2.IMREAD_COLOR applies it)."""
    if not data:
        raise UndecodableImage("empty image")
    if not (data.startswith(_JPEG) or data.startswith(_PNG)):
        raise UndecodableImage("not a JPEG or PNG image")
    width, height = header_size(data)
    if width * height > MAX_PIXELS:
        # Refused on the header: a small file can declare a huge image, and OpenCV would allocate it all first.
        raise UndecodableImage(f"image too large: {width}x{height} is more than {MAX_PIXELS} pixels")
    buf = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise UndecodableImage("the image could not be decoded (corrupt or truncated)")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise UndecodableImage(f"image too large: more than {MAX_PIXELS} pixels")
    return image


def header_size(data: bytes) -> tuple[int, int]:
    """Width and height as the JPEG or PNG header declares them (Pillow reads the header only, no pixels)."""
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as img:
            return img.size
    except Image.DecompressionBombError:
        raise UndecodableImage(f"image too large: more than {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UndecodableImage("the image could not be decoded (corrupt or truncated header)") from None


def order_quad(quad: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(quad, np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    return np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]], np.float32)


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    q = order_quad(quad)
    width = max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3]))
    height = max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1]))
    return float(width), float(height)


def crop_line(
    image: np.ndarray, quad: np.ndarray, *, margin_x: float = 0.08, margin_y: float = 0.15, height: int = 48
) -> np.ndarray:
    """The text line under `quad`, rectified by a perspective warp, with a margin (a fraction of the line height),
    scaled so its height is `height` (small, distant plates are upscaled with cubic interpolation)."""
    q = order_quad(quad)
    w, h = quad_size(q)
    h = max(h, 1.0)
    # Expand the quad along its own axes by the margins.
    right = (q[1] - q[0]) / max(np.linalg.norm(q[1] - q[0]), 1e-6)
    down = (q[3] - q[0]) / max(np.linalg.norm(q[3] - q[0]), 1e-6)
    mx, my = margin_x * h, margin_y * h
    grown = np.array(
        [
            q[0] - right * mx - down * my,
            q[1] + right * mx - down * my,
            q[2] + right * mx + down * my,
            q[3] - right * mx + down * my,
        ],
        np.float32,
    )
    out_h = height
    out_w = max(8, int(round((w + 2 * mx) / (h + 2 * my) * out_h)))
    target = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(grown, target)
    return cv2.warpPerspective(image, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def equalized(line: np.ndarray) -> np.ndarray:
    """Local contrast (CLAHE on lightness): helps dim, hazy and night plates."""
    lab = cv2.cvtColor(line, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(2, 8))
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def sharpened(line: np.ndarray) -> np.ndarray:
    blur = cv2.GaussianBlur(line, (0, 0), 1.5)
    return cv2.addWeighted(line, 1.6, blur, -0.6, 0)


def upscaled(image: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def number_line(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of the plate number inside a plate region: the largest row of character-sized
    blobs of one height, found on both polarities of an Otsu binarization (dark on light and light on dark). The
    text detector often boxes the whole plate (number, state name, stickers) as one line; the characters of the
    number are the plate's tallest blobs that stand in a row."""
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    rh, rw = gray.shape[:2]
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    best: list[tuple[int, int, int, int]] = []
    for mask in (binary, 255 - binary):
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blobs = []
        for x, y, w, h, area in stats[1:count]:
            # A character: a good share of the region's height, taller than wide, not a frame edge.
            if not (0.2 * rh <= h <= 0.95 * rh and 0.08 * h <= w <= 1.1 * h and area >= 0.12 * w * h):
                continue
            if x == 0 or y == 0 or x + w >= rw or y + h >= rh:
                continue
            blobs.append((int(x), int(y), int(w), int(h)))
        for seed in blobs:
            cy, sh = seed[1] + seed[3] / 2, seed[3]
            row = [b for b in blobs if abs(b[3] - sh) <= 0.2 * sh and abs(b[1] + b[3] / 2 - cy) <= 0.3 * sh]
            if len(row) > len(best) or (len(row) == len(best) and row and sh > best[0][3]):
                best = row
    if len(best) < 4:
        return None
    h = int(np.median([b[3] for b in best]))
    x0, x1 = min(b[0] for b in best), max(b[0] + b[2] for b in best)
    y0, y1 = min(b[1] for b in best), max(b[1] + b[3] for b in best)
    pad_x, pad_y = int(0.35 * h), int(0.2 * h)
    return max(0, x0 - pad_x), max(0, y0 - pad_y), min(rw, x1 + pad_x), min(rh, y1 + pad_y)
