"""The strict parser of the NCIC extract: each bad row named with its line and reason; whole-file refusals."""

from __future__ import annotations

from datetime import date

import pytest

from services.hotlist.categories import CATEGORIES
from services.hotlist.parser import FormatError, parse
from tests.hotlist.bca import HEADER, extract, row


def test_good_rows_become_copy_lines_with_normalized_plates() -> None:
    parsed = parse(extract([row("V845996328", "jfj-4764"), row("W000000001", "ABC 123", "WI")]))
    assert parsed.good == 2 and parsed.bad_count == 0
    assert parsed.csv.decode().splitlines() == [
        "V845996328,MN0271200,20211122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK",
        "W000000001,MN0271200,20211122,ABC123,WI,2022,PC,2013,CHEV,AVA,4D,BLK",
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("V845996328,MN0271200,20211122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D", "expected 12 fields, found 11"),
        ("Y845996328,MN0271200,20211122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "unknown file code 'Y'"),
        ("V84599632X,MN0271200,20211122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "is not a file code and 9 digits"),
        ("V845996328,MN02712,20211122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "ORI 'MN02712'"),
        ("V845996328,MN0271200,2021-11-22,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "is not YYYYMMDD"),
        ("V845996328,MN0271200,20210230,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "not a real date"),
        ("V845996328,MN0271200,29991122,JFJ4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "not a real date up to today"),
        ("V845996328,MN0271200,20211122,,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "plate is empty"),
        ("V845996328,MN0271200,20211122,J,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "not a plausible plate"),
        ("V845996328,MN0271200,20211122,JF*4764,MN,2022,PC,2013,CHEV,AVA,4D,BLK", "characters other than"),
        ("V845996328,MN0271200,20211122,JFJ4764,M1,2022,PC,2013,CHEV,AVA,4D,BLK", "state 'M1'"),
        ("V845996328,MN0271200,20211122,JFJ4764,MN,22,PC,2013,CHEV,AVA,4D,BLK", "plate year '22'"),
        ("V845996328,MN0271200,20211122,JFJ4764,MN,1492,PC,2013,CHEV,AVA,4D,BLK", "year '1492' is out of range"),
        ("V845996328,MN0271200,20211122,JFJ4764,MN,2022,PC,2013,CHEVROLET,AVA,4D,BLK", "make 'CHEVROLET'"),
        ('V845996328,MN0271200,20211122,"JFJ4764",MN,2022,PC,2013,CHEV,AVA,4D,BLK', "characters other than"),
    ],
)
def test_each_bad_row_is_named_with_line_and_reason(line: str, reason: str) -> None:
    parsed = parse(extract([row("P000000001", "OK1234"), line]), today=date(2026, 11, 25))
    assert parsed.good == 1 and parsed.bad_count == 1
    assert parsed.bad[0].line == 3 and reason in parsed.bad[0].reason


def test_duplicate_nic_and_unknown_codes_are_reported() -> None:
    parsed = parse(extract([row("V000000001", "AA1111"), row("V000000001", "BB2222"), row("Y000000002", "CC3333")]))
    assert [(b.line, b.reason) for b in parsed.bad] == [
        (3, "NIC number V000000001 appears twice"),
        (4, "unknown file code 'Y'"),
    ]
    assert parsed.unknown_codes == {"Y": 1}
    assert parsed.bad_share == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty file"),
        (b"\xff\xfe garbage", "the header is not ASCII text"),
        (b"<html><body>Service unavailable</body></html>\n", "header must be"),
        (("NIC,ORI\n" + row("V000000001", "AA1111")).encode(), "header must be"),
    ],
)
def test_files_that_are_not_the_extract_are_refused_whole(body: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        parse(body)


def test_a_bad_byte_makes_only_its_row_bad() -> None:
    # A field extract with one Latin-1 byte (an accented make) and one UTF-8 sequence: those rows are bad, with
    # their line and the byte's column; the rows around them load.
    body = extract([row("V000000001", "AA1111"), "@", row("V000000003", "CC3333"), "@", row("V000000005", "EE5555")])
    body = body.replace(b"@", row("V000000002", "BB2222").replace("CHEV", "CH\xc9V").encode("latin-1"), 1)
    body = body.replace(b"@", row("V000000004", "DD4444").replace("AVA", "AV\u00c5").encode(), 1)
    parsed = parse(body)
    assert parsed.good == 3 and parsed.bad_count == 2
    assert [(b.line, b.reason) for b in parsed.bad] == [
        (3, "byte 0xC9 at column 56 is not ASCII text"),
        (5, "byte 0xC3 at column 61 is not ASCII text"),
    ]
    assert [line.split(",")[0] for line in parsed.csv.decode().splitlines()] == [
        "V000000001",
        "V000000003",
        "V000000005",
    ]


def test_ncic_field_codes_name_the_columns_too() -> None:
    ncic = "NIC,ORI,ENTRY_DATE,LIC,LIS,LIY,LIT,VYR,VMA,VMO,VST,VCO"
    body = "\n".join([ncic, row("V000000001", "AA1111"), row("W000000002", "BB2222", "WI")]) + "\n"
    parsed = parse(body.encode())
    assert (parsed.good, parsed.bad_count) == (2, 0)
    mixed = "NIC,ORI,ENTRY_DATE,PLATE,LIS,PLATE_YEAR,LIT,VYR,MAKE,VMO,STYLE,VCO"  # column by column, either name
    assert parse(("\n".join([mixed, row("V000000001", "AA1111")]) + "\n").encode()).good == 1
    with pytest.raises(FormatError, match="NCIC field codes"):
        parse(("\n".join([ncic.replace("LIS", "LIZ"), row("V000000001", "AA1111")]) + "\n").encode())


@pytest.mark.parametrize("state", ["ZZ", "XX", "QQ"])
def test_unknown_state_and_province_codes_are_bad_rows(state: str) -> None:
    parsed = parse(extract([row("V000000001", "AA1111", "ON"), row("V000000002", "BB2222", state)]))
    assert parsed.good == 1
    assert [(b.line, b.reason) for b in parsed.bad] == [(3, f"state '{state}' is not a known state or province code")]


def test_code_table_marks_owner_categories() -> None:
    owner = {c for c, cat in CATEGORIES.items() if cat.concerns == "registered_owner"}
    assert {"W", "H", "M", "L", "T", "C", "X", "N", "K", "D", "S", "Q"} == owner
    assert {"V", "P", "F", "R", "A"} == set(CATEGORIES) - owner
    assert HEADER.split(",")[0] == "NIC"
