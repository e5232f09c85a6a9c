"""Check digits decide what counts as a card, an IBAN or an identity number: a look-alike with a wrong
check digit is left alone."""

from __future__ import annotations

import datetime

import pytest

from llmserve.guardrails.checksums import (
    card_number_valid,
    iban_valid,
    luhn_valid,
    resident_id_valid,
    ssn_valid,
)


def resident_id(first17: str) -> str:
    """A PRC resident id with the right MOD 11-2 check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "4012888888881881", "5555555555554444", "378282246310005", "6011111111111117",
     "3530111333300000", "30569309025904", "6200000000000005"],
)  # fmt: skip
def test_published_test_card_numbers_are_cards(number: str) -> None:
    assert luhn_valid(number)
    assert card_number_valid(number)


@pytest.mark.parametrize(
    "number",
    ["4111111111111112", "411111111111", "41111111111111111111", "1234567890123452", "7111111111111119"],
)
def test_wrong_check_digit_length_or_industry_is_not_a_card(number: str) -> None:
    assert not card_number_valid(number)


@pytest.mark.parametrize(
    "iban",
    ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NL91ABNA0417164300",
     "BE68539007547034", "NO9386011117947", "CH9300762011623852957", "ES9121000418450200051332"],
)  # fmt: skip
def test_valid_ibans(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "DE88370400440532013000",  # check digits off by one
        "DE8937040044053201300",  # one digit short for Germany
        "XX89370400440532013000",  # no such country
        "DE00370400440532013000",  # check digits 00 are never issued
        "GB82WEST1234569876543!",
    ],
)
def test_invalid_ibans(iban: str) -> None:
    assert not iban_valid(iban)


def test_ssn_ranges_never_issued_are_not_ssns() -> None:
    assert ssn_valid("123456789")
    for never in ("000123456", "666123456", "900123456", "999123456", "123004567", "123450000", "078051120"):
        assert not ssn_valid(never), never


def test_resident_id_needs_its_check_character_and_a_real_past_birth_date() -> None:
    assert resident_id_valid("11010519491231002X")
    assert resident_id_valid("11010519491231002x")
    assert not resident_id_valid("110105194912310021")  # wrong check character
    assert resident_id_valid(resident_id("44030119900101123"))
    assert not resident_id_valid(resident_id("44030119900230123"))  # 30 February
    assert not resident_id_valid(resident_id("44030118991231123"))  # before 1900
    future = resident_id("44030120990101123")
    assert not resident_id_valid(future)
    assert resident_id_valid(future, today=datetime.date(2100, 1, 1))
