"""Incremental detokenization and stop sequences: nothing emitted that must be taken back."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmserve.engine.text import IncrementalDetokenizer, StopMatcher


class ByteTokenizer:
    """One token per UTF-8 byte: the hardest case, every Chinese character spans three tokens."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode(errors="replace")


def stream_pieces(text: str) -> list[str]:
    tokenizer = ByteTokenizer()
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces = [detokenizer.push(token) for token in tokenizer.encode(text)]
    pieces.append(detokenizer.flush())
    return [piece for piece in pieces if piece]


@pytest.mark.parametrize("text", ["hello world", "你好,世界!", "emoji 👋 done", "mixed 中文 and English"])
def test_pieces_join_to_the_text_and_never_hold_half_characters(text: str) -> None:
    pieces = stream_pieces(text)
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)


def test_truncated_multibyte_tail_is_flushed_not_lost() -> None:
    detokenizer = IncrementalDetokenizer(ByteTokenizer())
    emitted = [detokenizer.push(byte) for byte in "好".encode()[:2]]
    assert emitted == ["", ""]
    assert detokenizer.flush() == "\ufffd"


def feed_all(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(piece) for piece in pieces) + matcher.flush()
    return out, matcher.stopped


def test_stop_sequence_split_across_pieces_is_cut_cleanly() -> None:
    out, stopped = feed_all(["END"], ["The answer is 4.", " E", "N", "D and more"])
    assert (out, stopped) == ("The answer is 4. ", True)


def test_partial_stop_prefix_is_held_back_then_released() -> None:
    matcher = StopMatcher(["\nUser:"])
    assert matcher.feed("line one\nUs") == "line one"
    assert matcher.feed("ually fine") == "\nUsually fine"
    assert matcher.flush() == ""
    assert not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = feed_all(["world", "lo"], ["hello world"])
    assert (out, stopped) == ("hel", True)


def test_no_stops_passes_text_straight_through() -> None:
    assert feed_all([], ["a", "b"]) == ("ab", False)


def test_nothing_after_a_stop() -> None:
    matcher = StopMatcher(["x"])
    assert matcher.feed("abxcd") == "ab"
    assert matcher.feed("more") == ""
    assert matcher.flush() == ""
