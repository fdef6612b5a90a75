"""The plate-format prior (data/plate_formats.toml) and the beam decoder under it, on hand-built CTC outputs."""

from __future__ import annotations

import numpy as np
import pytest

from services.recognition.decoding import PLATE_ALPHABET, Decoded, beam_search, decode_with_prior, key_alternatives
from services.recognition.grammar import grammar, load_table, shape
from shared.plates import STATE_NAMES, confusion_key


def test_every_state_formats_parse() -> None:
    states, boost = load_table()
    assert set(states) == set(STATE_NAMES.values())
    assert next(iter(states)) == "MN" and boost > 1  # Minnesota's first, and counted more
    for code, entry in states.items():
        assert entry.source and entry.vehicles > 0, code
        assert entry.formats and abs(sum(entry.formats.values()) - 1) < 1e-9, code
        assert all(set(fmt) <= {"D", "L"} and 4 <= len(fmt) <= 8 for fmt in entry.formats), code


def test_a_state_read_off_the_plate_selects_its_formats() -> None:
    anywhere, minnesota, california = grammar(), grammar("MN"), grammar("CA")
    assert minnesota.prior("123ABC") > anywhere.prior("123ABC") > california.prior("123ABC")
    assert california.prior("7ABC123") > anywhere.prior("7ABC123") > minnesota.prior("7ABC123")
    assert anywhere.prior("GOPHER") == anywhere.vanity > 0  # a vanity plate: low, never nothing
    assert anywhere.prior("A") == 0 and anywhere.prior("ABCD12345") == 0
    assert shape("AB0C12") == "LLRLDD" and anywhere.fits("ABO123") and anywhere.fits("AB0123")
    assert sum(anywhere.priors.values()) + anywhere.vanity == pytest.approx(1.0)


def _folded(rows: list[dict[str, float]]) -> np.ndarray:
    """(T, 2 + 36) scores: blank, other, then the plate alphabet; what a step leaves is blank."""
    out = np.zeros((len(rows), 2 + len(PLATE_ALPHABET)))
    for t, row in enumerate(rows):
        for ch, p in row.items():
            out[t, 1 if ch == "?" else 2 + PLATE_ALPHABET.index(ch)] = p
        out[t, 0] = max(0.0, 1.0 - out[t].sum())
    return out


def _line(*chars: dict[str, float]) -> np.ndarray:
    """Each character's step followed by a blank step, as a CTC recognizer answers."""
    rows: list[dict[str, float]] = []
    for ch in chars:
        rows += [ch, {}]
    return _folded(rows)


def _decode(folded: np.ndarray, state: str | None = None) -> Decoded:
    return decode_with_prior(Decoded("", "", [], [], None, folded), grammar(state))


def test_beam_decoder_reads_a_clear_line() -> None:
    folded = _line({"1": 0.97}, {"2": 0.97}, {"3": 0.97}, {"A": 0.97}, {"B": 0.97}, {"C": 0.97})
    decoded = _decode(folded)
    assert decoded.text == "123ABC"
    assert decoded.char_confidences == pytest.approx([0.97] * 6)
    assert decoded.beams and decoded.beams[0][0] == "123ABC" and decoded.beams[0][1] > 0.5


def test_repeats_need_a_blank_and_other_symbols_separate() -> None:
    # "AA": one A over two steps is one A; a blank (or a non-plate symbol) between two steps makes two.
    rows = [{"A": 0.95}, {"A": 0.95}, {}, {"B": 0.95}, {"?": 0.95}, {"B": 0.95}, {}]
    rows += [{ch: 0.95} for ch in "1234"]  # consecutive steps, no blank: each a new character
    assert _decode(_folded(rows)).text == "ABB1234"
    rows[4] = {"B": 0.95}  # no separator: the two B steps are one B
    assert _decode(_folded(rows)).text == "AB1234"


def test_round_character_follows_the_format() -> None:
    # A round character between letters and digits is 0 on a plate with digits, O on an all-letter (vanity) one.
    assert _decode(_line({"A": 0.9}, {"B": 0.9}, {"O": 0.6}, {"1": 0.9}, {"2": 0.9}, {"3": 0.9})).text == "AB0123"
    vanity = _line(*({ch: 0.97} for ch in "GOPHER"))
    assert _decode(vanity).text == "GOPHER"


def test_known_misread_corrected_only_when_the_recognizer_allows_it() -> None:
    # Minnesota 123ABC read 123AB8: the last character is 8 or B.
    doubtful = _line({"1": 0.97}, {"2": 0.97}, {"3": 0.97}, {"A": 0.97}, {"B": 0.97}, {"8": 0.6, "B": 0.35})
    sure = _line({"1": 0.97}, {"2": 0.97}, {"3": 0.97}, {"A": 0.97}, {"B": 0.97}, {"8": 0.995, "B": 0.002})
    assert _decode(doubtful).text == "123ABB"  # DDDLLL, a listed format, wins where the scores leave doubt
    assert _decode(sure).text == "123AB8"  # a vanity reading stands where they do not
    # New York issues no DDDLLL plates: read off the plate, its formats lend it too little to overrule the scores.
    assert _decode(doubtful, "NY").text == "123AB8"


def test_a_spurious_character_is_dropped_only_when_it_is_weak() -> None:
    # An emblem between the letters and digits read as a faint I (blank at 0.6 at its step).
    chars = [{"A": 0.97}, {"B": 0.97}, {"C": 0.97}, {"I": 0.4}, {"1": 0.97}, {"2": 0.97}, {"3": 0.97}, {"4": 0.97}]
    assert _decode(_line(*chars)).text == "ABC1234"
    chars[3] = {"I": 0.999}
    assert _decode(_line(*chars)).text == "ABCI1234"


def test_beam_scores_are_a_distribution_and_alternatives_differ_by_key() -> None:
    folded = _line({"1": 0.97}, {"2": 0.97}, {"3": 0.97}, {"A": 0.6, "R": 0.35}, {"B": 0.97}, {"C": 0.97})
    found = beam_search(folded, grammar())
    assert sum(share for _, share, _ in found) == pytest.approx(1.0)
    decoded = _decode(folded)
    alts = key_alternatives(decoded, 3)
    assert alts[0][0] == "123RBC"
    keys = [confusion_key(a) for a, _ in alts]
    assert len(set(keys)) == len(keys) and confusion_key(decoded.text) not in keys
    assert key_alternatives(decoded, 0) == []


def test_a_round_character_in_a_letter_slot_yields_to_a_letter_the_recognizer_allows() -> None:
    # AU41257 (two letters, five digits): the U read rounder than it is. US serials rarely issue the letter O, so a
    # round glyph in a letter slot is weaker evidence for itself; a U the recognizer gives 0.4 wins, one at 0.05 not.
    def read(u: float) -> str:
        rest = [{ch: 0.97} for ch in "41257"]
        return _decode(_line({"A": 0.97}, {"0": 0.99 - u, "U": u}, *rest)).text

    assert read(0.4) == "AU41257"
    assert read(0.05) == "A041257"
    # A round character in a digit slot is untouched: 123ABC's 0 for 1230BC is a digit, not a letter.
    assert _decode(_line(*[{ch: 0.97} for ch in "120ABC"])).text == "120ABC"
