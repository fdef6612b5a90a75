"""Which alternative readings go to the hot list: candidates from the CTC posteriors, ranked by expected hits per
expected false hit (services/recognition/decoding.py, hitrate.py), and the operating point tuning picks."""

from __future__ import annotations

import pytest

from services.recognition.decoding import Decoded, candidate_readings, key_alternatives
from services.recognition.evaluation import PhotoResult
from services.recognition.hitrate import MIN_KEY_COST, expected_entries, hit_value, key_cost
from services.recognition.tuning import BEFORE_PRIOR, _truncated, choose
from shared.plates import confusion_key


def _decoded(text: str, confs: list[float], runners: dict[int, list[tuple[str, float]]], beams: list) -> Decoded:
    return Decoded(text, text, confs, [runners.get(i, []) for i in range(len(text))], beams)


def test_a_runner_up_the_beam_dropped_is_a_candidate_at_the_recognizers_odds() -> None:
    # JJ5E1A for UJ5E1A: U is the first J's runner-up at 0.05 against 0.9; the beam never kept it.
    decoded = _decoded("JJ5E1A", [0.9, 0.94, 0.98, 0.99, 0.95, 0.98], {0: [("U", 0.05)]}, [("JJ5E1A", 0.8)])
    found = candidate_readings(decoded)
    assert found["UJ5E1A"] == pytest.approx(0.8 * 0.05 / 0.9)
    assert "JJ5E1A" not in found  # the reading itself is not its own alternative
    assert "UJ5E1A" in [a for a, _ in key_alternatives(decoded, 8)]


def test_two_swaps_multiply_and_a_weak_character_may_be_dropped() -> None:
    # An emblem read as E (0.4) between YG9 and X2G; the last G has C for runner-up, the 9 has G.
    decoded = _decoded(
        "YG9EX2G", [0.95, 0.97, 0.9, 0.4, 0.99, 0.99, 0.6], {2: [("G", 0.09)], 6: [("C", 0.3)]}, [("YG9EX2G", 0.5)]
    )
    found = candidate_readings(decoded)
    assert found["YG9X2G"] == pytest.approx(0.5 * 0.6)  # the E is not there
    assert found["YG9EX2C"] == pytest.approx(0.5 * 0.3 / 0.6)
    assert found["YGGEX2C"] == pytest.approx(0.5 * 0.1 * 0.5)
    assert found["G9EX2G"] == pytest.approx(0.5 * 0.05)
    # The beam's own share wins over a weaker estimate of the same reading.
    assert candidate_readings(_decoded("AB12", [0.5] * 4, {}, [("AB12", 0.5), ("B12", 0.4)]))["B12"] == 0.4


def test_keys_are_ranked_by_probability_per_false_hit_cost() -> None:
    # Two alternatives, equally likely: one in Minnesota's common format (costly: many list entries share its
    # key), one in no listed format (cheap). The cheap one goes first, and only it passes a strict threshold.
    costly, cheap = "123ACF", "12A3CE"
    assert key_cost(costly) > 1.0 and key_cost(cheap) == MIN_KEY_COST
    decoded = _decoded("123ACE", [0.99] * 6, {}, [("123ACE", 0.5), (costly, 0.2), (cheap, 0.2)])
    alts = key_alternatives(decoded, 8)
    assert [a for a, _ in alts[:2]] == [cheap, costly]
    assert dict(alts)[cheap] == 0.2  # each with its probability
    strict = hit_value(costly, 0.2) * 1.01
    assert [a for a, _ in key_alternatives(decoded, 8, strict)] == [cheap]
    assert len(key_alternatives(decoded, 1)) == 1 and key_alternatives(decoded, 0) == []


def test_readings_of_one_key_add_up_and_the_readings_own_key_is_never_sent() -> None:
    # 123ACF and 123ACF's confusable twin (I for 1) are one lookup, with both probabilities; A8C... is the
    # reading's own key (B/8) and adds no lookup.
    decoded = _decoded("123ACE", [0.99] * 6, {}, [("123ACE", 0.5), ("123ACF", 0.2), ("I23ACF", 0.1), ("I23ACE", 0.2)])
    alts = key_alternatives(decoded, 8)
    keys = [confusion_key(a) for a, _ in alts]
    assert confusion_key("123ACE") not in keys and len(keys) == len(set(keys))
    assert dict(alts)["123ACF"] == pytest.approx(0.3)


def test_key_cost_is_expected_entries_per_typical_key_with_a_floor() -> None:
    assert key_cost("123ACF") == pytest.approx(expected_entries(confusion_key("123ACF")) / 0.01)
    # Minnesota's DDDLLL (boosted) costs more than Delaware's digits-only DDDDDDD.
    assert key_cost("123ACF") > key_cost("1234567") > MIN_KEY_COST
    assert key_cost("ABCDEFGHX") == MIN_KEY_COST  # in no listed format: the floor
    assert hit_value("123ACF", 0.5) == pytest.approx(0.5 / key_cost("123ACF"))


def _result(name: str, truth: str, alts: list[str], shares: list[float]) -> PhotoResult:
    return PhotoResult(name, "A", truth, truth, alts, 0, 0, shares)


def test_tuning_spends_the_false_hit_budget_of_the_settings_before_the_prior() -> None:
    # Before the prior, one of two correct reads also sent one common-format key: that is the budget. With the
    # prior, one alternative is worth 0.25 and one 0.06: the least threshold within the budget lets the first
    # through (0.07), not the second (0.05 would spend twice the budget).
    worth = {"123ACF": 0.25, "123ACK": 0.06}
    shares = {a: v * key_cost(a) for a, v in worth.items()}
    before = [_result("a", "123ACE", ["123ACF"], [0.5]), _result("b", "123ACH", [], [])]
    after = [
        _result("a", "123ACE", ["123ACF"], [shares["123ACF"]]),
        _result("b", "123ACH", ["123ACK"], [shares["123ACK"]]),
    ]
    runs = [{"setting": BEFORE_PRIOR, "results": before}, {"setting": {"vanity": 0.01}, "results": after}]
    chosen = choose(runs, "A")
    assert chosen["options"] == {"vanity": 0.01, "alternatives": 8, "min_share": 0.07}
    measured, budget = chosen["measured_on_these_photos"], chosen["before_prior_on_these_photos"]
    assert measured["false_hits_per_1000"] == budget["false_hits_per_1000"] > 0
    assert [r.alternatives for r in _truncated(after, 8, 0.07)] == [["123ACF"], []]
    assert [r.alternatives for r in _truncated(after, 8, 0.05)] == [["123ACF"], ["123ACK"]]
    # Before the prior nothing was sent beyond correct reads: no budget; 0.3 is the least threshold sending neither.
    runs[0]["results"] = [_result("a", "123ACE", [], []), _result("b", "123ACH", [], [])]
    strict = choose(runs, "A")
    assert strict["options"]["min_share"] == 0.3 and strict["measured_on_these_photos"]["false_hits_per_1000"] == 0


def test_a_look_alike_letter_is_offered_at_a_share_of_the_letters_doubt() -> None:
    # 002HHH for 002HHM: the last H is unsure (0.6) and the recognizer ranks M low (0.025). H and M are look-alikes
    # (decoding.LOOKALIKES) the shared confusion classes keep apart: offered at `lookalike` x (1 - 0.6).
    decoded = _decoded(
        "002HHH", [0.96, 0.99, 0.96, 0.97, 0.84, 0.6], {5: [("A", 0.2), ("M", 0.025)]}, [("002HHH", 0.4)]
    )
    assert candidate_readings(decoded)["002HHM"] == pytest.approx(0.4 * 0.025 / 0.6)
    found = candidate_readings(decoded, lookalike=0.5)
    assert found["002HHM"] == pytest.approx(0.4 * 0.5 * 0.4 / 0.6)
    assert found["002HHA"] == pytest.approx(0.4 * 0.2 / 0.6)  # other runners-up as before
    assert "002HHW" not in found and "002HHN" not in found  # only the letter's own look-alikes (H: M)
    # A sure letter leaves no room: its look-alike stays at the recognizer's odds.
    sure = _decoded("002HHH", [0.99] * 6, {}, [("002HHH", 0.9)])
    assert candidate_readings(sure, lookalike=0.5)["002HHM"] == pytest.approx(0.9 * 0.5 * 0.01 / 0.99)
    # Sent only when it is worth its false hits: at this threshold, with the look-alike and not without.
    threshold = hit_value("002HHM", 0.1)
    assert "002HHM" in [a for a, _ in key_alternatives(decoded, 8, threshold, lookalike=0.5)]
    assert "002HHM" not in [a for a, _ in key_alternatives(decoded, 8, threshold)]
