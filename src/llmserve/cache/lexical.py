"""A lexical check on a semantic candidate: sentence embeddings are blind to what changes an answer most.

Measured on tests/unit/cache/paraphrases.py with all-MiniLM-L6-v2: "convert a string to an integer" and
"convert an integer to a string" score 0.996, "safe"/"unsafe" 0.988, "best case"/"worst case" 0.972,
"5 minutes"/"15 minutes" 0.917 — as close as true paraphrases. No threshold separates them, so a candidate
above the threshold must also pass ``same_question``: the same numbers, the same negations, no swapped
roles, and not exactly one content word exchanged for an unrelated one. Paraphrases that only swap a
synonym ("tallest"/"highest") are lost to it: for a cache, a wrong answer costs more than a miss.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_CONTRACTIONS = (
    (re.compile(r"\b(can|won|shan)'t\b"), r"\1 not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'(s|re|ve|ll|d|m)\b"), ""),
)

_CARDINALS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty"
)  # fmt: skip
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_CARDINALS)} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "dozen": "12",
}  # fmt: skip
_NEGATIONS = frozenset((
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without", "cannot",
    "non"
))  # fmt: skip
_CJK_NEGATIONS = frozenset("不没未非别无勿")
_NEGATING_PREFIXES = ("un", "non", "in", "im", "il", "ir", "dis")
# Words on either side of these play different roles: "from London to Paris" is not "from Paris to London".
_DIRECTED = frozenset((
    "to", "from", "into", "onto", "than", "versus", "vs", "before", "after", "over", "under", "above",
    "below"
))  # fmt: skip
_STOPWORDS = _DIRECTED | frozenset((
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did",
    "how", "what", "which", "who", "whom", "whose", "when", "where", "why", "i", "me", "my", "mine",
    "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them",
    "their", "this", "that", "these", "those", "can", "could", "would", "should", "shall", "will",
    "may", "might", "must", "please", "tell", "give", "let", "kindly", "way", "there", "here", "of",
    "in", "on", "at", "for", "with", "by", "about", "as", "and", "or", "but", "if", "so", "any", "some",
    "just", "also", "really", "very"
))  # fmt: skip


@dataclass(frozen=True)
class _Profile:
    numbers: Counter[str]
    negations: int
    content: tuple[str, ...]  # content words (stemmed), in order
    directed: bool  # contains a word that makes order meaningful


def is_latin(text: str) -> bool:
    """Whether every letter is Latin script: the only text an English-only embedder reads reliably.

    all-MiniLM-L6-v2 maps most CJK characters to one unknown token, so "水的沸点是多少" and
    "水的冰点是多少" (boiling / freezing point) embed identically.
    """
    return all(ord(char) < 0x250 or 0x1E00 <= ord(char) <= 0x1EFF for char in text if char.isalpha())


def same_question(first: str, second: str) -> bool:
    """Whether two texts that embed alike may share an answer (a veto, not a similarity)."""
    if not (is_latin(first) and is_latin(second)):
        return _same_numbers_and_negations_cjk(first, second)
    a, b = _profile(first), _profile(second)
    if a.numbers != b.numbers or a.negations != b.negations:
        return False
    words_a, words_b = Counter(a.content), Counter(b.content)
    if words_a == words_b:
        return a.content == b.content or not (a.directed or b.directed)
    only_a, only_b = words_a - words_b, words_b - words_a
    if any(prefix + word in only_b for word in only_a for prefix in _NEGATING_PREFIXES):
        return False
    if any(prefix + word in only_a for word in only_b for prefix in _NEGATING_PREFIXES):
        return False
    if only_a.total() == 1 and only_b.total() == 1:
        # Exactly one word exchanged: France/Germany, best/worst, delete/create — unless it is the same
        # word in another form (painted/painter, safe/safely).
        return _related_forms(next(iter(only_a)), next(iter(only_b)))
    return True


def _profile(text: str) -> _Profile:
    text = text.lower().replace("’", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    numbers: Counter[str] = Counter()
    negations = 0
    content: list[str] = []
    directed = False
    for token in _TOKEN.findall(text):
        if _DIGITS.fullmatch(token):
            numbers[token.replace(",", "")] += 1
        elif token in _NUMBER_WORDS:
            numbers[_NUMBER_WORDS[token]] += 1
        elif token in _NEGATIONS:
            negations += 1
        elif token in _STOPWORDS:
            directed = directed or token in _DIRECTED
        else:
            content.append(_stem(token))
    return _Profile(numbers, negations, tuple(content), directed)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _related_forms(first: str, second: str) -> bool:
    shared = 0
    for char_a, char_b in zip(first, second, strict=False):
        if char_a != char_b:
            break
        shared += 1
    return shared >= 4 and shared >= max(len(first), len(second)) - 3


def _same_numbers_and_negations_cjk(first: str, second: str) -> bool:
    def numbers(text: str) -> Counter[str]:
        return Counter(match.replace(",", "") for match in _DIGITS.findall(text))

    def negations(text: str) -> int:
        return sum(char in _CJK_NEGATIONS for char in text)

    return numbers(first) == numbers(second) and negations(first) == negations(second)
