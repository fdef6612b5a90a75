"""The OCR engine behind a small interface: PP-OCR text detection and recognition on ONNX Runtime via `rapidocr`,
and optionally our plate head (`models/plate_head.onnx`, trained by `services/recognition/training`; off by default:
it did not read unseen photos better, README "Recognition").

rapidocr's wheel ships the PP-OCR ONNX weights, so nothing downloads at run time. The engine is built once per
process (`get_engine`); ONNX Runtime sessions are safe to run from several threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from services.recognition.decoding import fold, plate_columns

PLATE_HEAD = Path(__file__).parent / "models" / "plate_head.onnx"
# The PP-OCR recognizer's per-time-step features, just before its 18,710-symbol classifier: what the plate head reads.
REC_FEATURES = "p2o.pd_op.transpose.8.0"


@dataclass(frozen=True)
class TextLine:
    """A text line the detector found: its quadrilateral in the detector's input pixels and its score."""

    quad: np.ndarray  # (4, 2) float32, clockwise from top-left
    score: float


@dataclass(frozen=True)
class LineScores:
    """One text line's CTC scores, one row per time step."""

    probs: np.ndarray  # (T, len(charset)): PP-OCR's own classifier
    features: np.ndarray | None = None  # (T, 120): PP-OCR's features at each step, when asked for
    plate: np.ndarray | None = None  # (T, 1 + 36): the plate head's, blank then PLATE_ALPHABET; None without it


class OcrEngine(Protocol):
    """What the pipeline needs from an OCR engine."""

    charset: list[str]  # index 0 is the CTC blank

    def detect(self, image: np.ndarray, max_side: int = 960) -> list[TextLine]:
        """Text lines in `image`, searched at most `max_side` pixels wide; quads in `image`'s pixels."""
        ...

    def recognize(self, lines: list[np.ndarray]) -> list[LineScores]:
        """Per line image (BGR, any height: it is resized to the recognizer's), its CTC scores."""
        ...


def _rec_model_path(rapid: Any) -> Path:
    """Where rapidocr keeps the recognition model it loaded (its wheel's `models/` folder)."""
    from rapidocr.inference_engine.base import FileInfo, InferSession

    cfg = rapid.text_rec.cfg
    info = InferSession.get_model_url(
        FileInfo(
            engine_type=cfg.engine_type,
            ocr_version=cfg.ocr_version,
            task_type=cfg.task_type,
            lang_type=cfg.lang_type,
            model_type=cfg.model_type,
        )
    )
    return Path(cfg.model_root_dir) / Path(info["model_dir"]).name


SPIN = "session.intra_op.allow_spinning"
_spin = {"value": "0"}  # what rapidocr's sessions get (see _use_spinning)


def _session(model: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry(SPIN, _spin["value"])
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _use_spinning(spin: bool) -> None:
    """Whether ONNX Runtime's threads spin while waiting for work: spinning burns CPU whenever a thread is
    descheduled, which on a shared 2-core machine is most of the time (docs/recognition-cpu.md). rapidocr builds
    its sessions itself, with no setting for it: its session options get ours added."""
    from rapidocr.inference_engine.onnxruntime.main import OrtInferSession

    _spin["value"] = "1" if spin else "0"
    original = OrtInferSession.__dict__["_init_sess_opts"].__func__
    if getattr(original, "_alpr_spin", False):
        return

    def with_spin(cfg: Any) -> Any:
        opts = original(cfg)
        opts.add_session_config_entry(SPIN, _spin["value"])
        return opts

    with_spin._alpr_spin = True  # type: ignore[attr-defined]
    OrtInferSession._init_sess_opts = staticmethod(with_spin)  # type: ignore[method-assign]


def _float32_normalize() -> None:
    """rapidocr normalizes the detector's input in float64 (its mean and std are float64 arrays): ~17 ms of CPU on a
    photo at 1024 px, against 1 ms in float32, for the same values to within a float32 rounding."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    if getattr(DetPreProcess.normalize, "_alpr_float32", False):
        return

    def normalize(self: Any, img: np.ndarray) -> np.ndarray:
        std = np.asarray(self.std, np.float64)
        gain = (self.scale / std).astype(np.float32)
        offset = (np.asarray(self.mean, np.float64) / std).astype(np.float32)
        return img.astype(np.float32) * gain - offset

    normalize._alpr_float32 = True  # type: ignore[attr-defined]
    DetPreProcess.normalize = normalize  # type: ignore[method-assign]


class RapidOcrEngine:
    """PP-OCRv6 small detection + recognition models, as packaged by rapidocr, and optionally the plate head."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        spin: bool = False,
        plate_head: bool = False,
        head_path: Path = PLATE_HEAD,
        features: bool = False,
    ) -> None:
        """`plate_head` also scores each line with the plate head; `features` (implied by it) returns PP-OCR's
        features of each line (what the head is trained on)."""
        from rapidocr import RapidOCR

        threads = threads or os.cpu_count() or 1
        _use_spinning(spin)
        _float32_normalize()
        # OpenCV's thread pool (the localizer's thresholds and components, resizes) follows the same setting: with a
        # worker per core already filling the cores, its extra threads only add CPU (docs/recognition-cpu.md).
        cv2.setNumThreads(threads)
        self._ocr = RapidOCR(
            params={
                "Global.log_level": "error",
                # The pipeline picks the detection scale itself (`detect(max_side=...)`): no resizing here.
                "Det.limit_side_len": 4096,
                "Det.limit_type": "max",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                # rapidocr turns ONNX Runtime's memory arena off; with it, detection at 1280 px takes 25 % less
                # time (measured: 134 → 101 ms), the buffers being reused instead of allocated for every photo.
                "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
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
        self._columns = plate_columns(self.charset)
        self._rec_session: Any = rec.session.session
        self._head: Any = _session(str(head_path), 1) if plate_head else None
        if plate_head or features:
            import onnx

            # The same recognition model, also answering with its features, so one pass feeds both classifiers.
            model = onnx.load(str(_rec_model_path(self._ocr)))
            model.graph.output.append(onnx.helper.make_tensor_value_info(REC_FEATURES, onnx.TensorProto.FLOAT, None))
            self._rec_session = _session(model.SerializeToString(), threads)

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

    def recognize(self, lines: list[np.ndarray]) -> list[LineScores]:
        if not lines:
            return []
        ratios = [img.shape[1] / max(1, img.shape[0]) for img in lines]
        max_ratio = max(max(ratios), 320 / self._height)  # the width PP-OCR was trained at: narrower reads worse
        batch = np.stack([self._rec.resize_norm_img(img, max_ratio) for img in lines]).astype(np.float32)
        outputs = self._rec_session.run(None, {self._rec_session.get_inputs()[0].name: batch})
        probs, features = outputs[0], (outputs[1] if len(outputs) > 1 else None)
        # Each line's steps beyond its own width are padding: drop them.
        steps = probs.shape[1]
        out = []
        for i, r in enumerate(ratios):
            n = max(1, int(np.ceil(steps * r / max_ratio)))
            line = features[i, :n] if features is not None else None
            out.append(LineScores(probs[i, :n], line, self._plate_scores(probs[i, :n], line)))
        return out

    def _plate_scores(self, probs: np.ndarray, features: np.ndarray | None) -> np.ndarray | None:
        """The plate head's scores for one line. Line by line, because its LSTM reads the whole line both ways and
        must not read another line's padding."""
        if self._head is None or features is None:
            return None
        # Its second input: PP-OCR's own scores folded onto the plate alphabet, as log probabilities.
        folded = np.log(np.clip(fold(probs, self._columns), 1e-6, 1.0)).astype(np.float32)
        return self._head.run(None, {"features": features[None], "probs": folded[None]})[0][0]


_engine: OcrEngine | None = None
_lock = threading.Lock()


def get_engine(threads: int | None = None, spin: bool = False) -> OcrEngine:
    """The process's engine, built on first use (models load once per worker process); `threads` and `spin` apply
    to that first build (unset threads: one per core)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = RapidOcrEngine(threads=threads, spin=spin)
    return _engine
