"""Token ids of long texts, encoded a slice at a time so that a megabyte costs megabytes.

A fast tokenizer's ``Encoding`` keeps per token its string, offsets, type id and masks besides the
id, about 400 bytes a token: one 3.9 MB chat (1.6 M tokens) took the server +650 MB, three at once
over a gigabyte. Encoded in slices of ``SLICE_CHARS``, ``SLICES_PER_CALL`` slices' ``Encoding`` are
alive at a time and only the ids are kept.

Slicing must not change a single id, so it is done only where it provably cannot, and otherwise the
text is encoded whole (exact, just dearer):

- a byte-level BPE (GPT-2's scheme) with its split regex, no prefix space, no normalizer and no
  dropout. Its regex never lets a piece run from a non-space character into a following space, so a
  cut before a space that follows such a character is a piece boundary, and BPE merges stay inside
  pieces;
- added (special) tokens without spaces and without whitespace stripping, so no cut falls inside one
  or moves a space it would absorb;
- special tokens added around the text only as the whole text would get them: the slices are
  encoded without, so a tokenizer that adds any (a post-processor) is encoded whole.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from tokenizers import pre_tokenizers

SLICE_CHARS = 32 * 1024  # about 10k tokens: a slice's Encoding costs a few MB
SLICES_PER_CALL = 4  # encoded together: what is alive at once
# The character before a cut: letters, digits, ASCII punctuation. Never a space of any kind, and no
# exotic character that one Unicode table might call a space and another not.
_SAFE_BEFORE_CUT = frozenset(chr(c) for c in range(0x21, 0x7F))

_sliceable: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def encode_ids(tokenizer: Any, text: str, *, add_special_tokens: bool) -> list[int]:
    """``tokenizer(text, add_special_tokens=...)["input_ids"]``, with bounded memory for long text."""
    if len(text) > SLICE_CHARS and _can_slice(tokenizer):
        backend = tokenizer.backend_tokenizer
        ids: list[int] = []
        slices = [text[start:end] for start, end in _cuts(text, SLICE_CHARS)]
        for first in range(0, len(slices), SLICES_PER_CALL):
            # encode_batch, not encode: only the batch call lets go of the GIL while it works, and
            # the event loop needs it meanwhile.
            group = backend.encode_batch(slices[first : first + SLICES_PER_CALL], add_special_tokens=False)
            for encoding in group:
                ids.extend(encoding.ids)
        return ids
    # The ids only: every further list (attention mask, type ids) is built holding the GIL.
    encoded = tokenizer(
        text, add_special_tokens=add_special_tokens, return_attention_mask=False, return_token_type_ids=False
    )
    return list(encoded["input_ids"])


def _can_slice(tokenizer: Any) -> bool:
    try:
        known = _sliceable.get(tokenizer)
    except TypeError:  # not weakly referenceable: decide each time (cheap)
        return _decide(tokenizer)
    if known is None:
        known = _sliceable[tokenizer] = _decide(tokenizer)
    return known


def _decide(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # fast (Rust) tokenizers only
    if backend is None or backend.normalizer is not None:
        return False
    pre = backend.pre_tokenizer
    if not isinstance(pre, pre_tokenizers.ByteLevel) or pre.add_prefix_space or not pre.use_regex:
        return False
    if type(backend.model).__name__ != "BPE" or getattr(backend.model, "dropout", None):
        return False
    for added in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if added.lstrip or added.rstrip or any(ch.isspace() for ch in added.content):
            return False
    probe = "Hello world"
    with_specials = backend.encode(probe, add_special_tokens=True).ids
    return bool(with_specials == backend.encode(probe, add_special_tokens=False).ids)


def _cuts(text: str, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) slices of about ``size`` characters, each cut before a space after a safe one."""
    start, length = 0, len(text)
    while length - start > size:
        cut = text.find(" ", start + size)
        while cut != -1 and text[cut - 1] not in _SAFE_BEFORE_CUT and not text[cut - 1].isalnum():
            cut = text.find(" ", cut + 1)
        if cut == -1:
            break
        yield start, cut
        start = cut
    yield start, length
