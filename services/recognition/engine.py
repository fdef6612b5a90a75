"""The OCR engine behind a small interface: PP-OCR text detection and recognition on ONNX Runtime via `rapidocr`.

rapidocr's wheel ships the PP-OCR ONNX weights, so nothing downloads at run time. The engine is built once per
process (`get_engine`); ONNX Runtime sessions are safe to run from several threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class TextLine:
    """A text line the detector found: its quadrilateral in the detector's input pixels and its score."""

    quad: np.ndarray  # (4, 2) float32, clockwise from top-left
    score: float


class OcrEngine(Protocol):
    """What the pipeline needs from an OCR engine."""

    charset: list[str]  # index 0 is the CTC blank

    def detect(self, image: np.ndarray, max_side: int = 960) -> list[TextLine]:
        """Text lines in `image`, searched at most `max_side` pixels wide; quads in `image`'s pixels."""
        ...

    def recognize(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        """Per line image (BGR), the CTC probability matrix (time steps x len(charset))."""
        ...


class RapidOcrEngine:
    """PP-OCRv6 small detection + recognition models, as packaged by rapidocr."""

    def __init__(self, *, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        threads = threads or os.cpu_count() or 1
        self._ocr = RapidOCR(
            params={
                "Global.log_level": "error",
                # The pipeline picks the detection scale itself (`detect(max_side=...)`): no resizing here.
                "Det.limit_side_len": 4096,
                "Det.limit_type": "max",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
        # rapidocr loads each model lazily on first use; two warm-up calls load both here, once per process.
        # The use_* flags are passed on every call: rapidocr keeps the last call's flags otherwise.
        blank = np.full((64, 256, 3), 255, np.uint8)
        self._ocr(blank, use_det=True, use_cls=False, use_rec=False)
        self._ocr(blank, use_det=False, use_cls=False, use_rec=True)
        rec = self._ocr.text_rec
        if rec is None or self._ocr.text_det is None:
            raise RuntimeError("rapidocr did not load its models")
        self._rec: Any = rec
        self.charset = list(rec.postprocess_op.character)
        self._height: int = int(rec.rec_image_shape[1])

    def detect(self, image: np.ndarray, max_side: int = 960) -> list[TextLine]:
        scale = min(1.0, max_side / max(image.shape[:2]))
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # Every call (from any pool thread) sets the same flags, so rapidocr's stored flags never race.
        out = self._ocr(image, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(out, "boxes", None)
        scores = getattr(out, "scores", None)
        if boxes is None or len(boxes) == 0:
            return []
        scores = scores if scores is not None else [1.0] * len(boxes)
        return [TextLine(np.asarray(b, np.float32) / scale, float(s)) for b, s in zip(boxes, scores, strict=False)]

    def recognize(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        if not lines:
            return []
        ratios = [img.shape[1] / max(1, img.shape[0]) for img in lines]
        max_ratio = max(max(ratios), 320 / self._height)
        batch = np.stack([self._rec.resize_norm_img(img, max_ratio) for img in lines]).astype(np.float32)
        preds = np.asarray(self._rec.session(batch))
        # Each line's steps beyond its own width are padding: drop them.
        steps = preds.shape[1]
        return [preds[i, : max(1, int(np.ceil(steps * r / max_ratio)))] for i, r in enumerate(ratios)]


_engine: OcrEngine | None = None
_lock = threading.Lock()


def get_engine() -> OcrEngine:
    """The process's engine, built on first use (models load once per worker process)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = RapidOcrEngine()
    return _engine
