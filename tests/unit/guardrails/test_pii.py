"""PII in free text is found and masked, look-alikes (dates, versions, order numbers, wrong check
digits) are left alone, and one number is never masked as two things."""

from __future__ import annotations

import pytest

from llmserve.guardrails import find_pii, mask_pii
from tests.unit.guardrails.test_checksums import resident_id


def masked(text: str, *entities: str) -> str:
    return mask_pii(text, entities or ("email", "phone", "card", "iban", "national_id"))[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+news@example.co.uk today", "write to [EMAIL] today"),
        ("Contact: <ops@mail.example.com>.", "Contact: <[EMAIL]>."),
        ("邮箱是zhangsan@163.com谢谢", "邮箱是[EMAIL]谢谢"),
        ("QQ邮箱 123456789@qq.com 也行", "QQ邮箱 [EMAIL] 也行"),
    ],
)
def test_emails_are_masked_wherever_they_stand(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize("text", ["ping @alice about it", "user@localhost", "a@b", "a@bar.c0m", "x @ y.com"])
def test_things_that_are_not_email_addresses_stay(text: str) -> None:
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 (212) 555-1234 now", "call [PHONE] now"),
        ("UK office +44 20 7946 0958.", "UK office [PHONE]."),
        ("London 020 7946 0958, mobile 07700 900123", "London [PHONE], mobile [PHONE]"),
        ("tel 212-555-1234 or (212) 555-1234", "tel [PHONE] or [PHONE]"),
        ("toll free 1-800-555-0199", "toll free [PHONE]"),
        ("Paris 01 23 45 67 89", "Paris [PHONE]"),
        ("我的手机号是13812345678，请联系", "我的手机号是[PHONE]，请联系"),
        ("手机：138 1234 5678；座机：010-12345678", "手机：[PHONE]；座机：[PHONE]"),
        ("+86 138 1234 5678 或 0086 139 1234 5678", "[PHONE] 或 [PHONE]"),
    ],
)
def test_phone_numbers_in_international_and_national_formats(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-01-15 at 10:30",
        "version 1.2.3.4 of the library",
        "server 192.168.100.200 is down",
        "order number 2125551234 shipped",  # ten bare digits: an id, not a phone
        "invoice 00123456",
        "it costs 1 234 567 yuan",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_dates_versions_addresses_and_ids_are_not_phone_numbers(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005",
     "5555 5555 5555 4444", "6011111111111117"],
)  # fmt: skip
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    assert masked(f"pay with {card}, thanks") == "pay with [CARD], thanks"
    assert masked(f"卡号{card}。") == "卡号[CARD]。"


def test_nineteen_digit_unionpay_card_in_4_4_4_4_3_groups() -> None:
    digits = "621234567890123456"
    check = next(d for d in "0123456789" if _luhn(digits + d))
    number = digits + check
    grouped = " ".join([number[:4], number[4:8], number[8:12], number[12:16], number[16:]])
    assert masked(f"银联卡 {grouped} 已绑定") == "银联卡 [CARD] 已绑定"


def _luhn(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 declined",  # Luhn fails
        "tracking 1234 5678 9012 3456",  # Luhn holds, but no card starts with 1
        "ticket 9111111111111119",
    ],
)
def test_numbers_without_a_valid_check_digit_are_not_cards(text: str) -> None:
    assert find_pii(text) == []


def test_card_followed_by_more_digits_is_still_a_card() -> None:
    assert masked("4111 1111 1111 1111 2024") == "[CARD] 2024"
    assert masked("4111 1111 1111 1111 123") == "[CARD] 123"


def test_a_card_number_is_not_a_phone_number_even_when_only_phones_are_masked() -> None:
    text = "card 4111 1111 1111 1111, phone +1 212 555 1234"
    assert masked(text, "phone") == "card 4111 1111 1111 1111, phone [PHONE]"
    assert masked(text) == "card [CARD], phone [PHONE]"
    assert [span.entity for span in find_pii(text)] == ["card", "phone"]


def test_chinese_mobile_numbers_are_phones_not_cards() -> None:
    assert [span.entity for span in find_pii("13812345678 和 4111111111111111")] == ["phone", "card"]


@pytest.mark.parametrize(
    "iban",
    ["DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32",
     "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00", "NO93 8601 1117 947"],
)  # fmt: skip
def test_ibans_in_print_and_compact_form(iban: str) -> None:
    assert masked(f"IBAN: {iban} (main account)") == "IBAN: [IBAN] (main account)"
    assert masked(f"收款账户{iban}，谢谢") == "收款账户[IBAN]，谢谢"


def test_iban_followed_by_an_uppercase_word_keeps_the_word() -> None:
    assert masked("BE68 5390 0754 7034 FROM ALICE") == "[IBAN] FROM ALICE"


@pytest.mark.parametrize(
    "text",
    ["DE88 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 0", "XX89 3704 0044 0532 0130 00", "AB12 CD"],
)
def test_iban_look_alikes_are_not_ibans(text: str) -> None:
    assert find_pii(text, ["iban"]) == []


def test_ssn_is_masked_but_never_issued_ranges_are_not() -> None:
    assert masked("SSN 123-45-6789.") == "SSN [NATIONAL_ID]."
    assert masked("SSN 123 45 6789.") == "SSN [NATIONAL_ID]."
    for never in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45 6789"):
        assert find_pii(f"ssn {never}") == [], never


def test_chinese_resident_id_needs_checksum_and_real_birth_date() -> None:
    assert masked("身份证号11010519491231002X。") == "身份证号[NATIONAL_ID]。"
    assert masked("id 11010519491231002x ok") == "id [NATIONAL_ID] ok"
    valid = resident_id("44030119900101123")
    assert masked(f"身份证：{valid}") == "身份证：[NATIONAL_ID]"
    assert find_pii("身份证：110105194912310021") == []  # wrong check character
    assert find_pii(f"身份证：{resident_id('44030119900230123')}") == []  # 30 February
    assert find_pii(f"身份证：{resident_id('44030120990101123')}") == []  # born in the future


def test_resident_id_that_passes_luhn_is_still_an_id_not_a_card() -> None:
    for sequence in range(100, 400):
        number = resident_id(f"44030119900101{sequence}")
        if number[-1] != "X" and _luhn(number):
            assert [span.entity for span in find_pii(number)] == ["national_id"]
            return
    pytest.fail("no Luhn-valid resident id in the range")


def test_mixed_chinese_text_masks_every_entity_and_counts_them() -> None:
    text = "联系张三，手机13812345678，邮箱zs@example.cn，身份证11010519491231002X，卡号6011111111111117。"
    out, counts = mask_pii(text)
    assert out == "联系张三，手机[PHONE]，邮箱[EMAIL]，身份证[NATIONAL_ID]，卡号[CARD]。"
    assert counts == {"phone": 1, "email": 1, "national_id": 1, "card": 1}


def test_only_the_requested_entities_are_masked() -> None:
    text = "mail a@example.com, call +44 20 7946 0958"
    assert mask_pii(text, ["email"]) == ("mail [EMAIL], call +44 20 7946 0958", {"email": 1})
    assert mask_pii(text, []) == (text, {})


def test_spans_point_at_the_pii() -> None:
    text = "to bob@example.org now"
    [span] = find_pii(text)
    assert text[span.start : span.end] == "bob@example.org"
    assert span.entity == "email"
