"""PII detection and masking: email, phone, payment card, IBAN, national ids (US SSN, PRC resident id).

Why hand-written detectors and not a library:

* Microsoft Presidio, the usual choice, needs a spaCy NER model, downloaded from outside PyPI and so not
  installable on the offline machines this gateway runs on; and for the entities configured here its
  recognizers are regexes plus checksums, which is what ``detectors.py`` is.
* ``phonenumbers`` (libphonenumber) finds phone numbers better than the formats here, but needs a default
  region per request and is not incremental: streamed output must be masked exactly as the whole text
  would be (below), which needs matchers whose reach is bounded and known.
* The checksums are what python-stdnum does; see ``checksums.py``.

False positives are kept low by validating every candidate: Luhn plus the card industry digit for cards,
mod-97 and the country's length for IBANs, the never-issued ranges for SSNs, birth date and MOD 11-2 for
PRC ids; phone numbers need separators or a country prefix, except Chinese mobiles.

How text is scanned: left to right; at each position the detectors are tried in priority order and the
first valid match wins; masking resumes after it. Candidate positions are found cheaply: email only
within 64 characters before an '@', the others only in runs of digit-like characters around a digit.
Because every attempt reads a bounded, known stretch (``Detector.reach``, ``Detector.charset``),
:class:`OutputMasker` knows which decisions a partial stream already fixes: what it emits, joined, equals
:func:`mask_pii` on the whole text for any split, and it holds back at most 66 characters, more only
while an email address may still be running on (a run of email characters holding an '@').

Cost, measured on the development machine: 20 kB of mixed prose with emails, phones and numbers masks
in about 2 ms; a stream of it in 4-character deltas costs about 10 µs a delta. The worst case found is
text packed with near-miss numbers ("4444 4444 …": a card candidate every 5 characters, each failing
Luhn), about 1.6 ms per kB, still linear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from llmserve.config import PiiEntity
from llmserve.guardrails.detectors import (
    ANY_NUMERIC,
    DETECTORS,
    EMAIL,
    EMAIL_REACH_WITHOUT_AT,
    NUMERIC_RUN,
)

ALL_ENTITIES: tuple[PiiEntity, ...] = ("email", "phone", "card", "iban", "national_id")
LABELS: dict[PiiEntity, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "national_id": "[NATIONAL_ID]",
}

_DIGIT = re.compile("[0-9]")
_AT_CLUSTER = re.compile(f"@(?:[^@]{{0,{EMAIL.reach - 1}}}@)*")


class Span(NamedTuple):
    start: int
    end: int
    entity: PiiEntity


class _Candidates:
    """The next position at or after a cursor where some detector's pattern matches (valid or not)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._email: tuple[int, int | None] = (-1, None)  # (searched from, found) caches
        self._numeric: tuple[int, int | None] = (-1, None)
        self._run = (0, 0)  # the digit-like run last searched: [start, end)

    def next_start(self, cursor: int) -> int | None:
        found = [at for at in (self._next_email(cursor), self._next_numeric(cursor)) if at is not None]
        return min(found, default=None)

    def _next_email(self, cursor: int) -> int | None:
        since, found = self._email
        if 0 <= since <= cursor and (found is None or found >= cursor):
            return found
        text, start = self._text, cursor
        found = None
        while (at := text.find("@", start)) >= 0:
            # An email starts at most 64 before its '@'. One search covers a cluster of '@'s (each
            # within reach of the last, over 4 kB at most); attempts starting up to its last '@' read
            # below last + reach, so the endpos changes none of them.
            cluster = _AT_CLUSTER.match(text, at, at + 4096)
            assert cluster is not None
            last = cluster.end() - 1
            match = EMAIL.pattern.search(text, max(start, at - 64), last + EMAIL.reach)
            if match is not None and match.start() <= last:
                found = match.start()
                break
            start = last + 1
        self._email = (cursor, found)
        return found

    def _next_numeric(self, cursor: int) -> int | None:
        since, found = self._numeric
        if 0 <= since <= cursor and (found is None or found >= cursor):
            return found
        text, start = self._text, cursor
        found = None
        while True:
            run_start, run_end = self._run
            if start >= run_end:
                digit = _DIGIT.search(text, start)
                if digit is None:
                    break
                end = NUMERIC_RUN.match(text, digit.start())
                assert end is not None  # a starred class always matches
                run_start, run_end = self._run = (max(start, digit.start() - 2), end.end())
            # No numeric match crosses the run's end; the endpos keeps the character after it in view.
            match = ANY_NUMERIC.search(text, max(start, run_start), min(len(text), run_end + 1))
            if match is not None:
                found = match.start()
                break
            start = run_end
        self._numeric = (cursor, found)
        return found


def _match_at(text: str, start: int) -> Span | None:
    for detector in DETECTORS:
        match = detector.pattern.match(text, start)
        if match is not None:
            length = detector.valid_length(match.group())
            if length:
                return Span(start, start + length, detector.entity)
    return None


def scan(text: str, pos: int, frontier: int) -> tuple[list[Span], int]:
    """Decide every position of ``text`` from ``pos`` up to ``frontier``: the spans starting there,
    and the next undecided position (past ``frontier`` when the last span runs beyond it)."""
    spans: list[Span] = []
    if frontier <= pos:
        return spans, pos
    candidates = _Candidates(text)
    cursor = pos
    while (start := candidates.next_start(cursor)) is not None and start < frontier:
        span = _match_at(text, start)
        if span is None:
            cursor = start + 1
        else:
            spans.append(span)
            cursor = span.end
    return spans, max(frontier, spans[-1].end if spans else frontier)


def decided_until(text: str) -> int:
    """How far a scan of ``text``, with more text to come, is already final: no attempt starting
    before this reads past the end of ``text``."""
    frontier = len(text)
    for detector in DETECTORS:
        run_start = detector.tail_start(text)
        reach = detector.reach
        if detector is EMAIL and "@" not in text[run_start:]:
            reach = EMAIL_REACH_WITHOUT_AT
        frontier = min(frontier, max(run_start, len(text) - reach))
    return frontier


def render(text: str, start: int, end: int, spans: Iterable[Span], entities: frozenset[PiiEntity]) -> str:
    """``text[start:end]`` with the spans of ``entities`` replaced by their labels."""
    pieces: list[str] = []
    for span in spans:
        if span.entity in entities:
            pieces.append(text[start : span.start])
            pieces.append(LABELS[span.entity])
            start = span.end
    pieces.append(text[start:end])
    return "".join(pieces)


def _count(spans: Iterable[Span], entities: frozenset[PiiEntity], into: dict[str, int]) -> dict[str, int]:
    for span in spans:
        if span.entity in entities:
            into[span.entity] = into.get(span.entity, 0) + 1
    return into


def find_pii(text: str, entities: Iterable[PiiEntity] = ALL_ENTITIES) -> list[Span]:
    """The spans of ``entities`` in ``text``. Every detector takes part whatever ``entities`` holds, so
    a card number is never reported as a phone number just because cards are not asked for."""
    wanted = frozenset(entities)
    spans, _ = scan(text, 0, len(text))
    return [span for span in spans if span.entity in wanted]


def mask_pii(text: str, entities: Iterable[PiiEntity] = ALL_ENTITIES) -> tuple[str, dict[str, int]]:
    """``text`` with each PII span of ``entities`` replaced by its label, and how many of each."""
    wanted = frozenset(entities)
    spans, _ = scan(text, 0, len(text))
    counts = _count(spans, wanted, {})
    return (render(text, 0, len(text), spans, wanted) if counts else text), counts


class OutputMasker:
    """Masks one stream (one choice) as it arrives.

    ``feed`` returns the text that is final now and holds back the rest until more text or ``flush``.
    Everything it returns, joined, equals ``mask_pii(whole_text, entities)[0]`` for any split of the
    text into pieces. ``masked`` counts what was replaced so far.
    """

    def __init__(self, entities: Iterable[PiiEntity] = ALL_ENTITIES) -> None:
        self._entities = frozenset(entities)
        self._text = ""  # one character of context (for lookbehinds), then the undecided text
        self._pos = 0  # where the undecided text starts in _text
        self.masked: dict[str, int] = {}

    def feed(self, piece: str) -> str:
        if not self._entities:
            return piece
        self._text += piece
        return self._advance(decided_until(self._text))

    def flush(self) -> str:
        if not self._entities:
            return ""
        return self._advance(len(self._text))

    def _advance(self, frontier: int) -> str:
        spans, pos = scan(self._text, self._pos, frontier)
        if pos <= self._pos:
            return ""
        out = render(self._text, self._pos, pos, spans, self._entities)
        _count(spans, self._entities, self.masked)
        keep = pos - 1
        self._text, self._pos = self._text[keep:], 1
        return out
