"""The PII detectors: one bounded regex per format, and a validator that says how much of a match is real.

Every pattern uses bounded quantifiers only and ASCII classes only (no ``\\w``/``\\b``, whose Unicode
meaning would glue ``手机13812345678`` into one word). So one attempt at a position reads at most
``reach`` characters, and consumes only characters of its ``charset`` (lookarounds read one more on
either side): what ``pii.py`` needs to scan a stream exactly as it would scan the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from llmserve.config import PiiEntity
from llmserve.guardrails.checksums import (
    IBAN_LENGTHS,
    card_number_valid,
    iban_valid,
    resident_id_valid,
    ssn_valid,
)


@dataclass(frozen=True)
class Detector:
    entity: PiiEntity
    pattern: re.Pattern[str]
    charset: str  # every character a match can consume, as a regex class body
    reach: int  # most characters one attempt reads from its start, the lookahead included
    valid_length: Callable[[str], int | None]  # matched text -> length of the valid match, or None
    trailing_run: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trailing_run", re.compile(f"[{self.charset}]*\\Z"))

    def tail_start(self, text: str) -> int:
        """Where the trailing run of ``charset`` characters begins (looking back ``reach`` at most)."""
        found = self.trailing_run.search(text, max(0, len(text) - self.reach))
        assert found is not None  # an empty run always matches
        return found.start()


def _whole(match: str) -> int:
    return len(match)


def _card_length(match: str) -> int | None:
    # The whole match, else the longest valid prefix ending at a group boundary: a 16-digit card
    # followed by a 3-digit group is a card and a number, not an invalid 19-digit card.
    if card_number_valid(match.replace(" ", "").replace("-", "")):
        return len(match)
    for end in range(len(match) - 1, 12, -1):
        if match[end] in " -" and card_number_valid(match[:end].replace(" ", "").replace("-", "")):
            return end
    return None


def _iban_length(match: str) -> int | None:
    # The country fixes the length; whatever the pattern took beyond it must be a separate group.
    wanted = IBAN_LENGTHS.get(match[:2])
    seen = 0
    for index, char in enumerate(match):
        if char != " ":
            seen += 1
            if seen == wanted:
                end = index + 1
                if end < len(match) and match[end] != " ":
                    return None
                return end if iban_valid(match[:end].replace(" ", "")) else None
    return None


def _ssn_length(match: str) -> int | None:
    return len(match) if ssn_valid(match[:3] + match[4:6] + match[7:]) else None


def _resident_id_length(match: str) -> int | None:
    return len(match) if resident_id_valid(match) else None


def _digits_between(low: int, high: int) -> Callable[[str], int | None]:
    def check(match: str) -> int | None:
        digits = sum(char.isdigit() for char in match) - (2 if match.startswith("00") else 0)
        if low <= digits <= high and match.count("(") == match.count(")"):
            return len(match)
        return None

    return check


_BEFORE = "(?<![0-9A-Za-z])"
_IBAN_COUNTRY = "(?:" + "|".join(sorted(IBAN_LENGTHS)) + ")"
_AFTER = "(?![0-9A-Za-z])"

EMAIL = Detector(
    "email",
    # Local part ≤ 64 (RFC 5321); 1–6 labels of ≤ 63, then an alphabetic TLD.
    re.compile(r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,6}[A-Za-z]{2,63}(?![A-Za-z0-9-])"),
    charset=r"A-Za-z0-9._%+@-",
    reach=64 + 1 + 6 * 64 + 63 + 1,
    valid_length=_whole,
)
# An email attempt that meets no '@' within this many characters has failed (local part, then '@').
EMAIL_REACH_WITHOUT_AT = 64 + 1 + 1

# Every match below holds a digit and starts at most 2 characters before its first one.
NUMERIC: tuple[Detector, ...] = (
    Detector(
        "iban",  # compact, or the print format: groups of four, a shorter last group
        re.compile(
            _BEFORE
            + _IBAN_COUNTRY
            + r"[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
            + _AFTER
        ),
        charset="A-Z0-9 ",
        reach=4 + 7 * 5 + 4 + 1,
        valid_length=_iban_length,
    ),
    Detector(
        "national_id",  # PRC resident identity number: region, birth date, sequence, check character
        re.compile(
            _BEFORE
            + r"[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
            + _AFTER
        ),
        charset="0-9Xx",
        reach=18 + 1,
        valid_length=_resident_id_length,
    ),
    Detector(
        "national_id",  # US SSN: AAA-GG-SSSS, dashes or spaces (the same both times)
        re.compile(r"(?<![0-9])[0-9]{3}(?P<ssn>[- ])[0-9]{2}(?P=ssn)[0-9]{4}(?![0-9])"),
        charset="0-9 -",
        reach=11 + 1,
        valid_length=_ssn_length,
    ),
    Detector(
        "card",  # compact, 4-4-4-4(-3) and the like, or Amex/Diners 4-6-5/4-6-4
        re.compile(
            r"(?<![0-9A-Za-z+])[2-6](?:[0-9]{12,18}"
            r"|[0-9]{3}(?P<card>[ -])[0-9]{4}(?P=card)[0-9]{4}(?P=card)[0-9]{1,4}(?:(?P=card)[0-9]{1,3})?"
            r"|[0-9]{3}(?P<amex>[ -])[0-9]{6}(?P=amex)[0-9]{4,5})" + _AFTER
        ),
        charset="0-9 -",
        reach=19 + 4 + 1,
        valid_length=_card_length,
    ),
    Detector(
        "phone",  # international: +CC or 00CC, 8–15 digits (E.164) in groups
        re.compile(r"(?<![0-9A-Za-z+])(?:\+|00)[1-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])"),
        charset=r"0-9+ .()-",
        reach=3 + 14 * 3 + 1,
        valid_length=_digits_between(8, 15),
    ),
    Detector(
        "phone",  # Chinese mobile: 1[3-9]x xxxx xxxx
        re.compile(_BEFORE + r"1[3-9][0-9](?:[ -]?[0-9]{4}){2}" + _AFTER),
        charset="0-9 -",
        reach=13 + 1,
        valid_length=_whole,
    ),
    Detector(
        "phone",  # North America: (NXX) NXX-XXXX or NXX-NXX-XXXX, optionally 1- in front
        re.compile(
            _BEFORE
            + r"(?:1[ .-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}"
            + _AFTER
        ),
        charset="0-9 .()-",
        reach=16 + 1,
        valid_length=_whole,
    ),
    Detector(
        "phone",  # national with trunk 0 and a separator: 020 7946 0958, 07700 900123, 010-12345678
        re.compile(_BEFORE + r"0[1-9][0-9]{1,4}[ -][0-9]{3,4}[ -]?[0-9]{3,4}" + _AFTER),
        charset="0-9 -",
        reach=16 + 1,
        valid_length=_digits_between(10, 12),
    ),
    Detector(
        "phone",  # French style: 01 23 45 67 89
        re.compile(_BEFORE + r"0[1-9](?P<fr>[ .])[0-9]{2}(?:(?P=fr)[0-9]{2}){3}" + _AFTER),
        charset="0-9 .",
        reach=14 + 1,
        valid_length=_whole,
    ),
)

# Priority order: at one start position the first detector with a valid match wins, so an 18-digit
# PRC id is not taken for a card, nor a card for a phone number.
DETECTORS: tuple[Detector, ...] = (EMAIL, *NUMERIC)

# Where a numeric match may start: the first position any NUMERIC pattern matches (validity aside).
ANY_NUMERIC = re.compile("|".join(f"(?:{d.pattern.pattern})" for d in NUMERIC))
# Numeric matches consume only these (the union of NUMERIC charsets), so the run of them around a
# digit holds every numeric match there.
NUMERIC_RUN = re.compile(r"[0-9A-Zx+ .()-]*")
