"""Plate-aware decoding on hand-built CTC outputs: folding, repeats, blanks, confidences, alternatives."""

from __future__ import annotations

import numpy as np

from services.recognition.decoding import PlateDecoder, alternatives

CHARSET = ["blank", "A", "B", "8", "1", "O", "0", "o", "-", "国"]


def _probs(rows: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(rows), len(CHARSET)), np.float32)
    for t, row in enumerate(rows):
        for symbol, p in row.items():
            out[t, CHARSET.index(symbol)] = p
        out[t, 0] += max(0.0, 1.0 - out[t].sum())
    return out


def test_folds_symbols_onto_the_plate_alphabet() -> None:
    decoder = PlateDecoder(CHARSET)
    probs = _probs(
        [
            {"A": 0.9},
            {"A": 0.8},  # a repeat: one A
            {"-": 0.95},  # not a plate character: dropped, and it separates
            {"国": 0.6, "B": 0.3},  # an emblem read as a Chinese symbol: dropped
            {"1": 0.9},
            {},
            {"1": 0.9},  # a blank between: two 1s
            {"o": 0.5, "O": 0.3},  # lower and upper case O fold together, then to 0 on a plate with digits
        ]
    )
    decoded = decoder.decode(probs)
    assert decoded.raw == "A-国11o"
    assert decoded.text == "A110"
    assert decoded.char_confidences[0] == np.float32(0.9)
    assert abs(decoded.char_confidences[-1] - 0.8) < 1e-6


def test_all_letter_reading_keeps_letter_o() -> None:
    decoded = PlateDecoder(CHARSET).decode(_probs([{"B": 0.9}, {}, {"O": 0.9}, {}, {"B": 0.9}]))
    assert decoded.text == "BOB"


def test_alternatives_come_from_runner_up_scores_and_confusion_classes() -> None:
    decoded = PlateDecoder(CHARSET).decode(_probs([{"A": 0.95}, {}, {"B": 0.55, "8": 0.4}, {}, {"1": 0.9}]))
    assert decoded.text == "AB1"
    alts = alternatives(decoded)
    assert alts[0][0] == "A81"  # the recognizer's own runner-up first
    assert {"A8I", "ABI"} & {a for a, _ in alts}  # then confusion-class swaps
    assert all(score <= decoded.confidence for _, score in alts)


def test_syntax_swaps_one_character_towards_a_common_format() -> None:
    from services.recognition.decoding import Decoded, apply_syntax

    # "ZEAV033" fits no common format; "7EAV033" (digit, 3 letters, 3 digits) is one runner-up away.
    runners = [[("7", 0.2)], [], [], [], [], [], []]
    decoded = Decoded("ZEAV033", "ZEAV033", [0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], runners)
    fixed = apply_syntax(decoded)
    assert fixed.text == "7EAV033"
    assert fixed.char_confidences[0] == 0.2
    # A reading that fits a format stays; one that is two characters off stays too.
    assert apply_syntax(Decoded("ABC1234", "", [0.9] * 7, [[]] * 7)).text == "ABC1234"
    assert apply_syntax(Decoded("AB1C2D3", "", [0.9] * 7, [[("1", 0.5)]] * 7)).text == "AB1C2D3"


def test_plate_head_scores_decide_the_text_and_pp_ocr_keeps_the_raw_reading() -> None:
    from services.recognition.decoding import PLATE_ALPHABET

    probs = _probs([{"B": 0.9}, {}, {"8": 0.9}])  # PP-OCR reads "B8"
    plate = np.zeros((3, 1 + len(PLATE_ALPHABET)), np.float32)
    plate[0, 1 + PLATE_ALPHABET.index("8")] = 0.7  # the head reads "88"
    plate[0, 1 + PLATE_ALPHABET.index("B")] = 0.3
    plate[1, 0] = 1.0
    plate[2, 1 + PLATE_ALPHABET.index("8")] = 1.0
    decoded = PlateDecoder(CHARSET).decode(probs, plate)
    assert decoded.raw == "B8"
    assert decoded.text == "88"
    assert abs(decoded.char_confidences[0] - 0.7) < 1e-6
    assert decoded.runners_up[0][0] == ("B", np.float32(0.3))
