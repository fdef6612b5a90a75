"""Arbitration between the two readers on constructed disagreements: agreement wins, the format decides, confidence
decides, a vehicle word loses, and the loser stays among the alternatives."""

from __future__ import annotations

import numpy as np

from services.recognition.arbitration import Reading, arbitrate, is_vehicle_word, slot_alternatives
from services.recognition.second_reader import ALPHABET, decode_slots


def slots(text: str, sure: float = 0.95, runner: dict[int, str] | None = None) -> np.ndarray:
    """Per-slot probabilities reading `text` at `sure` each, with a runner-up character at some slots."""
    probs = np.full((10, len(ALPHABET)), (1 - sure) / (len(ALPHABET) - 1), np.float32)
    for i, ch in enumerate(text.ljust(10, "_")):
        probs[i, ALPHABET.index(ch)] = sure
    for i, ch in (runner or {}).items():
        probs[i, ALPHABET.index(ch)] = (1 - sure) * 0.9
    return probs


def second(text: str, sure: float = 0.95, us: float = 1.0, runner: dict[int, str] | None = None) -> Reading:
    reading = decode_slots(slots(text, sure, runner))
    return Reading("second", reading.text, reading.confidence, 0.5 + 0.5 * us, slots=reading)


def first(text: str, confidence: float, alternatives: tuple[tuple[str, float], ...] = (), rank: int = 0) -> Reading:
    return Reading("first", text, confidence, alternatives=alternatives, rank=rank)


def test_both_readers_agree() -> None:
    verdict = arbitrate([first("KXR482", 0.9)], [second("KXR482")])
    assert verdict is not None
    assert (verdict.plate, verdict.agreement, verdict.first, verdict.second) == ("KXR482", "both", "KXR482", "KXR482")


def test_agreement_on_another_line_than_the_first_readers_best() -> None:
    # The first reader's best line was a badge-like code; the second reader read the plate, which the first reader
    # also had among its lines: the two agree on it.
    verdict = arbitrate([first("AWD4X4", 0.97), first("7HTW519", 0.8, rank=1)], [second("7HTW519")])
    assert verdict is not None and (verdict.plate, verdict.agreement) == ("7HTW519", "both")


def test_the_format_decides() -> None:
    # Equally sure: the reading in a listed format (1LLL000: Minnesota's DLLLDDD) beats one in none.
    verdict = arbitrate([first("7HTW519", 0.9)], [second("7HTWS19", 0.9)])
    assert verdict is not None
    assert (verdict.plate, verdict.agreement, verdict.winner) == ("7HTW519", "one", "first")
    assert "7HTWS19" in [a for a, _ in verdict.alternatives] or verdict.loser == "7HTWS19"
    # The other way round: the second reader's well-formed reading beats the first's malformed one.
    verdict = arbitrate([first("7HTWS19", 0.9)], [second("7HTW519", 0.9)])
    assert verdict is not None and (verdict.plate, verdict.winner) == ("7HTW519", "second")


def test_confidence_decides() -> None:
    # Both in a listed format (3/8 look alike): the surer reading wins; the other is kept among the alternatives.
    unsure_first = arbitrate([first("ABC1234", 0.55)], [second("ABC1284", 0.99)])
    assert unsure_first is not None and (unsure_first.plate, unsure_first.winner) == ("ABC1284", "second")
    unsure_second = arbitrate([first("ABC1234", 0.99)], [second("ABC1284", 0.6)])
    assert unsure_second is not None and (unsure_second.plate, unsure_second.winner) == ("ABC1234", "first")
    assert unsure_second.loser == "ABC1284"


def test_the_second_readers_odds_back_the_first_readers_reading() -> None:
    # The second reader read 8 where the first read B, with B its runner-up: its per-character probabilities back
    # the first reader's reading more than the first reader's odds back the second's.
    verdict = arbitrate([first("ABC1234", 0.9)], [second("A8C1234", 0.9, runner={1: "B"})])
    assert verdict is not None and verdict.plate == "ABC1234"


def test_a_vehicle_word_never_wins_over_a_plate_shaped_reading() -> None:
    assert is_vehicle_word("JEEP") and is_vehicle_word("ALTIMA") and not is_vehicle_word("KXR482")
    # Read at 0.999 by the first reader, the badge loses to the second reader's unsure plate reading.
    verdict = arbitrate([first("JEEP", 0.999)], [second("KXR482", 0.6)])
    assert verdict is not None and (verdict.plate, verdict.winner) == ("KXR482", "second")
    assert "JEEP" not in [a for a, _ in verdict.alternatives]
    # Even when both readers read the badge, it is not an agreed plate.
    verdict = arbitrate([first("ALTIMA", 0.99), first("PZM337", 0.7, rank=1)], [second("ALTIMA", 0.99)])
    assert verdict is not None and verdict.plate == "PZM337" and verdict.agreement != "both"


def test_an_unsure_disagreement_is_none() -> None:
    verdict = arbitrate([first("X7Q", 0.3)], [second("W9QQ", 0.2)])
    assert verdict is not None and verdict.agreement == "none"
    assert arbitrate([], []) is None


def test_the_second_readers_alternatives_swap_its_runners_up() -> None:
    reading = decode_slots(slots("KXR482", 0.9, runner={3: "A"}))
    alternatives = dict(slot_alternatives(reading))
    assert "KXRA82" in alternatives and 0 < alternatives["KXRA82"] < reading.confidence


def test_a_plate_proposed_by_shape_wins_over_a_dealer_word_on_the_first_readers_line() -> None:
    # wts-lg-000041's case: the first reader read the dealer's name under the bumper; the second reader's readings
    # of the regions it was given are noise, and of a plate proposed by its shape (proposals.py) a plate: that wins,
    # and what the first reader read stays among the alternatives.
    verdict = arbitrate(
        [first("DOMAMON", 0.72, alternatives=(("DOMAMION", 0.17),))],
        [second("B3XM9333", 0.3, us=0.02), second("51TA600", 0.9, us=0.91)],
    )
    assert verdict is not None
    assert (verdict.plate, verdict.agreement, verdict.winner) == ("51TA600", "one", "second")
    assert "DOMAMON" in [a for a, _ in verdict.alternatives]
