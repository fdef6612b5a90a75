"""The plate head's training data: synthetic plates drawn with OpenCV, encoded by the frozen PP-OCR recognizer.
(Training itself needs PyTorch, which the service and its tests do not install.)"""

from __future__ import annotations

import numpy as np

from services.recognition.engine import RapidOcrEngine
from services.recognition.training.dataset import encode, synthetic_crops
from services.recognition.training.synth import sample
from shared.plates import is_plate_text


def test_synthetic_lines_are_seeded_plate_crops() -> None:
    first = [sample(np.random.default_rng(7)) for _ in range(1)][0]
    again = sample(np.random.default_rng(7))
    assert first[1] == again[1] and np.array_equal(first[0], again[0])
    labels = [label for _, label in synthetic_crops(40, seed=3)]
    assert all(5 <= len(label) <= 8 and label.isalnum() and label == label.upper() for label in labels)
    assert sum(is_plate_text(label) for label in labels) >= 36
    assert len(set(labels)) == 40
    crop, _ = sample(np.random.default_rng(1))
    assert crop.shape[0] == 48 and crop.shape[1] > 48 and crop.dtype == np.uint8


def test_encoded_lines_carry_features_scores_and_labels() -> None:
    engine = RapidOcrEngine(threads=1, features=True)
    examples = encode(engine, synthetic_crops(6, seed=5))
    assert len(examples) == 6
    for example in examples:
        steps = len(example.features)
        assert example.features.shape == (steps, 120) and example.folded.shape == (steps, 38)
        assert steps >= len(example.label)  # CTC needs a step per character at least
        # Folded log-probabilities: each step's blank + other + plate characters sum to one.
        assert np.allclose(np.exp(example.folded.astype(np.float32)).sum(axis=1), 1.0, atol=0.02)
