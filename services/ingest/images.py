"""Cheap proof that an upload is a JPEG or PNG: Pillow parses the headers (format, dimensions) and, for PNG, checks
the chunk CRCs; no full decode, so it stays fast on the request path."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import Unprocessable

_TYPES = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def check_image(data: bytes, *, field: str, max_pixels: int) -> CheckedImage:
    if not data:
        raise Unprocessable(f"{field}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=tuple(_TYPES)) as img:
                fmt, (width, height) = img.format, img.size
                img.verify()  # structure (PNG CRCs, JPEG markers) without decoding every pixel
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise Unprocessable(f"{field}: not a JPEG or PNG image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Unprocessable(f"{field}: damaged image ({exc})") from None
    if fmt not in _TYPES or width < 8 or height < 8:
        raise Unprocessable(f"{field}: not a usable JPEG or PNG image ({fmt}, {width}x{height})")
    if width * height > max_pixels:
        raise Unprocessable(f"{field}: {width}x{height} is more pixels than the limit of {max_pixels}")
    if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise Unprocessable(f"{field}: truncated JPEG (no end-of-image marker)")
    content_type, ext = _TYPES[fmt]
    return CheckedImage(data, content_type, ext, width, height)
