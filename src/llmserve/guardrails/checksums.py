"""Check digits that turn "looks like a number" into "is one": Luhn, IBAN mod-97, SSN ranges, PRC ids.

Each is a few lines of arithmetic from a public standard, written here rather than taken from
python-stdnum (which implements the same checks) so the guardrails add no dependency; swapping them for
``stdnum.luhn``, ``stdnum.iban``, ``stdnum.us.ssn`` and ``stdnum.cn.ric`` would change no decision
below except stdnum's stricter per-country BBAN formats.
"""

from __future__ import annotations

import datetime

# ISO 13616 IBAN lengths per country (SWIFT IBAN registry). Countries outside the table are not
# recognised: an unknown prefix is far more often a product code than an IBAN.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# Each digit doubled, its digits summed (Luhn's every-second-digit rule).
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

# US SSNs never issued or publicly burned (the Woolworth wallet card, a 1940s advertisement).
_SSN_BURNED = frozenset({"078051120", "219099999"})

# GB 11643-1999: weights of the first 17 digits and the check character for each sum mod 11.
_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812 check digit over a string of ASCII digits."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_LUHN_DOUBLED.__getitem__, map(int, digits[-2::-2])))
    return (kept + doubled) % 10 == 0


def card_number_valid(digits: str) -> bool:
    """13–19 digits, a payment-card industry (first digit 2–6: Mastercard, Amex, Diners, JCB, Visa,
    Maestro, Discover, UnionPay) and a Luhn check digit. Airline (1) and other industries are left out:
    long numbers starting with them are ids and order numbers far more often."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def iban_valid(compact: str) -> bool:
    """ISO 13616: known country, its exact length, check digits 02–98, and the mod-97 remainder 1."""
    length = IBAN_LENGTHS.get(compact[:2])
    if length is None or len(compact) != length or not compact.isascii() or not compact.isalnum():
        return False
    if not ("02" <= compact[2:4] <= "98"):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ssn_valid(digits: str) -> bool:
    """US SSN (9 digits): area 000, 666 and 900–999, group 00 and serial 0000 were never issued."""
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    if area == 0 or area == 666 or area >= 900 or group == "00" or serial == "0000":
        return False
    return digits not in _SSN_BURNED


def resident_id_valid(number: str, *, today: datetime.date | None = None) -> bool:
    """PRC resident identity card (GB 11643-1999): 17 digits with a real birth date from 1900 up to
    today, then the ISO 7064 MOD 11-2 check character (a digit or X)."""
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > (today or datetime.date.today()):
        return False
    total = sum(int(char) * weight for char, weight in zip(number[:17], _RIC_WEIGHTS, strict=True))
    return _RIC_CHECK[total % 11] == number[17].upper()
