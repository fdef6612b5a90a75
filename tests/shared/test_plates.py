from shared.plates import confusable, confusion_key, confusion_variants, is_plausible, normalize


def test_normal_form() -> None:
    assert normalize(" abc-123 ") == "ABC123"
    assert normalize("ab c.12·3") == "ABC123"


def test_plausible_plates() -> None:
    assert is_plausible("ABC123")
    assert is_plausible("JFJ4764")
    assert is_plausible("GOPACK")  # vanity
    assert not is_plausible("GOPACK", allow_vanity=False)
    assert not is_plausible("A")
    assert not is_plausible("ABCDEFGH9")
    assert not is_plausible("AB$123")


def test_confusion_classes() -> None:
    assert confusion_key("ABC123") == confusion_key("A8CIZ3")
    assert confusable("0O1", "DQL")
    assert not confusable("ABC123", "ABC124")
    assert not confusable("ABC123", "ABC1234")
    variants = confusion_variants("B2")
    assert variants[0] == "B2"
    assert set(variants) == {"B2", "BZ", "82", "8Z"}


def test_text_that_is_not_a_plate() -> None:
    from shared.plates import is_non_plate_text, is_plate_text, state_from_text

    for text in ("12/25/2026", "10:45", "2026", "24", "JAN26", "20140512", "201405", "MINNESOTA", "10000 LAKES",
                 "Land of Lincoln", "WWW.BOBFORD.COM", "TOYOTA"):  # fmt: skip
        assert is_non_plate_text(text), text
        assert not is_plate_text(text), text
    for text in ("ABC123", "7AWV401", "GOPHER", "1049338", "ABC 123"):
        assert is_plate_text(text), text
    assert state_from_text("Minnesota") == "MN"
    assert state_from_text("NEW YORK") == "NY"
    assert state_from_text("ABC123") is None
