"""Hot-list hit recall and false hits, as `alpr eval-ocr` computes them."""

from __future__ import annotations

from collections import Counter

import pytest

from services.recognition.evaluation import PhotoResult, summarize
from services.recognition.grammar import grammar
from services.recognition.hitrate import expected_entries, generate_plates, outcome, sent_keys
from shared.plates import confusion_key


def test_keys_sent_are_the_reading_and_its_alternatives_by_confusion_key() -> None:
    # A8C123 and ABC123 share a key: one lookup; ingest sends at most 8 alternatives.
    assert sent_keys("ABC123", ["A8C123", "ABC128"]) == [confusion_key("ABC123"), confusion_key("ABC128")]
    assert len(sent_keys("ABC123", [f"ABC12{d}" for d in "0145679"] + ["XYZ111", "XYZ112"])) == 9
    assert sent_keys(None, ["ABC123"]) == [confusion_key("ABC123")]


def test_hit_when_the_truth_key_is_among_those_sent_and_false_hits_count_other_entries() -> None:
    hot = Counter({confusion_key("ABC123"): 1, confusion_key("ABC128"): 2, confusion_key("XYZ999"): 1})
    # Read with a confusable character: still a hit (same key), nothing else matched.
    assert outcome("ABC123", "A8C1Z3", [], hot) == outcome("ABC123", "A8C1Z3", [], hot)
    first = outcome("ABC123", "A8C1Z3", [], hot)
    assert first.hit and first.false_hits == 0 and first.keys == 1
    # Misread; the truth only among the alternatives: a hit, and the reading's own key matched two other entries.
    second = outcome("ABC123", "ABC128", ["ABC123"], hot)
    assert second.hit and second.false_hits == 2 and second.keys == 2
    # No read: no hit, nothing matched.
    third = outcome("ABC123", None, [], hot)
    assert not third.hit and third.false_hits == 0 and third.expected_false_hits == 0
    assert third.expected_false_hits_all_keys == 0


def test_false_hits_over_every_key_count_the_truths_own_key_too() -> None:
    # Read right: no false hit under other keys, but other plates of the list may share the truth's key.
    hot = Counter({confusion_key("ABC123"): 1})
    right = outcome("ABC123", "ABC123", [], hot, size=1_000_000)
    assert right.expected_false_hits == 0
    assert right.expected_false_hits_all_keys == pytest.approx(expected_entries(confusion_key("ABC123")))
    assert right.expected_false_hits_all_keys > 0
    wrong = outcome("ABC123", "ABC128", ["ABC123"], hot, size=1_000_000)
    assert wrong.expected_false_hits_all_keys == pytest.approx(
        wrong.expected_false_hits + expected_entries(confusion_key("ABC123"))
    )


def test_generated_hot_list_and_expected_entries_agree() -> None:
    plates = generate_plates(300_000, seed=3)
    assert len(plates) == 300_000 and all(grammar().fits(p) for p in plates[:1000])
    assert not any("O" in p for p in plates)  # US serials print a round character as 0
    keys = Counter(confusion_key(p) for p in plates)
    # Keys of plates from another draw: how many entries they meet in this list, counted and expected (~140).
    probes = [confusion_key(p) for p in generate_plates(45_000, seed=4)]
    drawn = sum(keys[k] for k in probes)
    expected = sum(expected_entries(k, len(plates)) for k in probes)
    assert expected > 50 and drawn == pytest.approx(expected, rel=0.3)
    assert expected_entries("ABCDEFGHX") == 0  # no format that long


def test_summary_reports_hit_recall_and_false_hits_per_thousand() -> None:
    hot = Counter({confusion_key("ABC128"): 3})
    results = [
        PhotoResult("a.jpg", "A", "ABC123", "ABC123", [], 100, 120),
        PhotoResult("b.jpg", "B", "ABC123", "ABC128", ["ABC123"], 200, 220),
        PhotoResult("c.jpg", "A", "XYZ789", None, [], 300, 320),
        PhotoResult("d.jpg", "B", "XYZ789", "XYZ780", [], 400, 420),
    ]
    s = summarize(results, hot)
    assert s["exact"] == 0.25 and s["within_one"] == 0.75 and s["no_read"] == 0.25
    assert s["hit_recall"] == 0.5
    assert s["false_hits_per_1000_drawn_list"] == 750.0  # 3 entries matched wrongly over 4 reads
    assert s["cpu_ms_per_photo"] == 270.0 and s["p50_ms"] == 250.0
