"""Turning token ids into text pieces: incremental detokenization and stop sequences.

Both hold text back rather than emit something they might have to take back: an incomplete UTF-8
sequence (a Chinese character split over byte tokens) or the start of a stop sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REPLACEMENT_CHAR = "\ufffd"


class Decoder(Protocol):
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDetokenizer:
    """Emits the new text each token adds, never a half-decoded character.

    Decodes a short sliding window (the offsets scheme vLLM uses) rather than the whole output, so each
    step costs O(1) and tokenizers whose pieces change when merged (sentencepiece spaces) stay right.
    """

    def __init__(self, tokenizer: Decoder) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        new_text = self._decode(self._prefix_offset, len(self._ids))
        if len(new_text) <= len(prefix_text) or new_text.endswith(REPLACEMENT_CHAR):
            return ""  # nothing printable yet, e.g. the first bytes of a multi-byte character
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return new_text[len(prefix_text) :]

    def flush(self) -> str:
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        rest = self._decode(self._prefix_offset, len(self._ids))[len(prefix_text) :]
        self._prefix_offset = self._read_offset = len(self._ids)
        return rest

    def _decode(self, start: int, end: int) -> str:
        return self._tokenizer.decode(self._ids[start:end], skip_special_tokens=True)


class StopMatcher:
    """Cuts the output at the first stop sequence and holds back any tail that could start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Returns the text that is now safe to emit."""
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        self._pending += piece
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            safe, self._pending = self._pending[:cut], ""
            return safe
        hold = self._longest_partial_stop_suffix()
        safe = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(self._pending) - hold :]
        return safe

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest

    def _longest_partial_stop_suffix(self) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest
