"""The lexical veto on semantic candidates: what embeddings cannot see must still block a hit."""

from __future__ import annotations

import pytest

from llmserve.cache.lexical import is_latin, same_question


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("How do I install numpy?", "How can I install numpy?"),
        ("what is the capital of france", "What's the capital city of France?"),
        ("Set a timer for 5 minutes.", "Please set a 5 minute timer."),
        ("List three benefits of exercise.", "List 3 benefits of exercise."),
        ("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
        ("Should I learn Rust or Go first?", "Should I learn Go or Rust first?"),
        ("Why can't I sleep?", "Why cannot I sleep?"),
    ],
)
def test_paraphrases_pass(first: str, second: str) -> None:
    assert same_question(first, second)
    assert same_question(second, first)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("What is 2 + 2?", "What is 2 + 3?"),  # numbers
        ("List three benefits of exercise.", "List five benefits of exercise."),
        ("Which foods contain gluten?", "Which foods do not contain gluten?"),  # negation
        ("Which foods contain gluten?", "Which foods don't contain gluten?"),
        ("How many days are in a leap year?", "How many days are in a non-leap year?"),
        ("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?"),  # negating prefix
        ("Convert a string to an integer.", "Convert an integer to a string."),  # swapped roles
        ("Flights from London to Paris.", "Flights from Paris to London."),
        ("What is the capital of France?", "What is the capital of Germany?"),  # one word exchanged
        ("Quicksort complexity in the best case?", "Quicksort complexity in the worst case?"),
        ("2加2等于几？", "2加3等于几？"),  # numbers, any script
        ("这个产品很好用。", "这个产品不好用。"),  # negation, any script
    ],
)
def test_different_questions_are_vetoed(first: str, second: str) -> None:
    assert not same_question(first, second)
    assert not same_question(second, first)


def test_latin_script_detection() -> None:
    assert is_latin("Où est la gare? Ça va, naïve café 2+2")
    assert is_latin("Tiếng Việt")
    assert not is_latin("法国的首都是哪里？")
    assert not is_latin("What does 首都 mean?")
    assert not is_latin("Как дела?")
