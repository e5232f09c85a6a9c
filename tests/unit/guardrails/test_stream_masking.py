"""A streamed answer is masked exactly as the whole answer would be, however the provider splits it,
and the masker holds back only a short tail."""

from __future__ import annotations

import random
import re

import pytest

from llmserve.guardrails import OutputMasker, mask_pii

PIECES = [
    "Sure! Mail john.doe@example.com or call +1 (212) 555-1234. ",
    "我的手机号是13812345678，邮箱zhangsan@163.com。",
    "Card 4111 1111 1111 1111 2024, IBAN DE89 3704 0044 0532 0130 00 ok. ",
    "身份证号11010519491231002X，SSN 123-45-6789 and 666-12-3456. ",
    "GB82WEST12345698765432 BE68 5390 0754 7034 FROM ",
    "01 23 45 67 89 / 020 7946 0958 / 212-555-1234 / 0086 139 1234 5678",
    "order 1234567890123456, version 1.2.3, 2024-01-15. ",
    "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 ",
    "aaaa@bbbb@cccc.dd@ee.com @@ x@y.z. ",
    "4444 4444 4444 4448 4444 ",
    "x" * 63 + "@example.com ",  # the longest local part, reached only 64 characters back
    "first.last" * 8 + "@mail.example.org",
    "u@" + ".".join(["a" * 60] * 5) + ".com",  # a long domain: decided only at its end
    "DE89370400440532013000GB82WEST12345698765432",
    "4111-1111-1111-1111-" * 3,
    "0" * 90,
    "+",
    "@",
    ".",
    "-",
    " ",
    "0",
    "4",
    "\n",
    "，",
]


def corpus(rng: random.Random, count: int) -> list[str]:
    texts = list(PIECES)
    for _ in range(count):
        texts.append("".join(rng.choice(PIECES) for _ in range(rng.randint(2, 10))))
    return texts


def stream(text: str, cuts: list[int], masker: OutputMasker) -> str:
    out, start = [], 0
    for cut in [*cuts, len(text)]:
        out.append(masker.feed(text[start:cut]))
        start = cut
    out.append(masker.flush())
    return "".join(out)


def test_any_split_gives_the_same_masked_text_as_the_whole() -> None:
    rng = random.Random(20240601)
    checked = 0
    for text in corpus(rng, 150):
        expected = mask_pii(text)[0]
        for _ in range(20):
            cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 40))))
            assert stream(text, cuts, OutputMasker()) == expected, (text, cuts)
            checked += 1
    assert checked > 3000


def test_character_by_character_and_entity_subsets() -> None:
    rng = random.Random(7)
    for text in corpus(rng, 30):
        for entities in (["email"], ["phone", "card"], ["iban", "national_id"]):
            expected = mask_pii(text, entities)[0]  # type: ignore[arg-type]
            cuts = list(range(1, len(text)))
            assert stream(text, cuts, OutputMasker(entities)) == expected, text  # type: ignore[arg-type]


def test_prose_streams_with_a_short_lag() -> None:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "12", "lazy", "dogs", "while", "3", "birds,"]
    masker, fed, emitted = OutputMasker(), 0, 0
    for index in range(2000):
        piece = words[index % len(words)] + " "
        fed += len(piece)
        emitted += len(masker.feed(piece))
        assert fed - emitted <= 66
    assert emitted + len(masker.flush()) == fed


def test_masked_text_comes_out_as_soon_as_the_pii_is_complete() -> None:
    masker = OutputMasker()
    assert masker.feed("mail bob@exa") == "mail "
    assert masker.feed("mple.com") == ""
    assert masker.feed(" now") == "[EMAIL] "
    assert masker.flush() == "now"
    assert masker.masked == {"email": 1}


@pytest.mark.parametrize("entities", [[], ()])
def test_masker_without_entities_passes_text_straight_through(entities: list[str]) -> None:
    masker = OutputMasker(entities)  # type: ignore[arg-type]
    assert masker.feed("mail bob@example.com") == "mail bob@example.com"
    assert masker.flush() == ""


def test_each_detector_reads_no_further_than_its_declared_reach_and_charset() -> None:
    # The stream masker's exactness rests on these two bounds; random digit-heavy text probes them.
    from llmserve.guardrails.detectors import DETECTORS

    rng = random.Random(3)
    alphabet = "0123456789 -.()+@xXABDEGRa_%"
    for detector in DETECTORS:
        for _ in range(300):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(10, 120)))
            if rng.random() < 0.5:
                text = rng.choice(PIECES[:10]) + text
            for start in range(0, len(text), 3):
                whole = detector.pattern.match(text, start)
                cut = detector.pattern.match(text[: start + detector.reach], start)
                assert (whole and whole.group()) == (cut and cut.group()), (detector.entity, text, start)
                if whole:
                    assert re.fullmatch(f"[{detector.charset}]*", whole.group()), (detector.entity, whole)
