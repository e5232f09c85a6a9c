"""Context fitting (the seed's prompt optimizer): make a long history fit the model's context window.

A deployment's ``context_strategy`` says what happens when the prompt plus the completion budget is
larger than its window: ``error`` sends the request unchanged and the provider answers 400 with
OpenAI's ``context_length_exceeded`` wording; ``truncate_oldest`` drops the oldest turns here, before
the request is routed.

Wiring, for one model group (its first or each truncating deployment):

- ``count``: the real tokenizer over the real chat template, i.e. the deployment's provider:
  ``lambda ms: provider.count_tokens(ChatInput(tuple(ms), options))``. A remote provider's count is
  an estimate (about four characters a token), which is the best a gateway can know.
- ``window``: for a local deployment ``(await provider.manager.get()).context_window`` (that is
  ``LoadedModel.context_window``, which already honours ``deployment.context_window``); for a remote
  one ``deployment.context_window``, and no fitting when that is ``None`` (window unknown).
- ``reserve``: ``completion_reserve(options.max_tokens, deployment.default_max_tokens, window,
  clamp=options.clamp_max_tokens)``: the tokens the reply needs.
- ``strategy``: ``deployment.context_strategy``.

The tokenizer is called O(log n) times for a history of n messages (a binary search over where the
kept history starts), never once per dropped message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from llmserve.types import ChatMessage

ContextStrategy = Literal["truncate_oldest", "error"]
TokenCounter = Callable[[Sequence[ChatMessage]], Awaitable[int]]

# A request without max_tokens gets whatever room is left (up to default_max_tokens); keeping this
# share of the window free for it stops a long history from leaving room for a few tokens only.
DEFAULT_REPLY_SHARE = 4


def completion_reserve(max_tokens: int | None, default_max_tokens: int, window: int, *, clamp: bool) -> int:
    """Tokens to keep free for the reply.

    An explicit ``max_tokens`` is a demand (the provider refuses a prompt that leaves less), so all
    of it is reserved. Without one, or where it is only an upper bound (the seed API's
    ``clamp_max_tokens``), the provider shrinks the reply to fit; reserving the whole
    ``default_max_tokens`` would then drop history the model had room for, so a quarter of the
    window at most is kept free.
    """
    fallback = min(default_max_tokens, max(1, window // DEFAULT_REPLY_SHARE))
    if max_tokens is None:
        return fallback
    return min(max_tokens, fallback) if clamp else max_tokens


async def fit_messages(
    messages: Sequence[ChatMessage],
    count: TokenCounter,
    window: int,
    reserve: int,
    strategy: ContextStrategy | str,
) -> tuple[list[ChatMessage], int]:
    """The messages to send and how many were dropped.

    ``truncate_oldest``, when ``count(messages) + reserve > window``: keeps every system message (in
    place) and the longest run of latest turns that fits. The kept history starts at a user message,
    so chat templates that insist on user/assistant alternation still render it, an assistant's
    tool calls stay with their results, and the last user message (with everything after it: the
    current tool-calling loop) is never dropped. When even that does not fit, it is returned
    trimmed that far and the provider answers the 400. Any other strategy returns ``messages``
    unchanged without counting.
    """
    kept = list(messages)
    if strategy != "truncate_oldest" or not kept:
        return kept, 0
    budget = window - max(0, reserve)
    if await count(kept) <= budget:
        return kept, 0
    cuts = _cut_points(kept)
    if not cuts:
        return kept, 0

    def keep_from(cut: int) -> list[ChatMessage]:
        return [m for i, m in enumerate(kept) if i >= cut or m.role == "system"]

    shortest = keep_from(cuts[-1])
    if await count(shortest) > budget:
        return shortest, len(kept) - len(shortest)
    # The earliest cut whose suffix fits; fewer messages never count more tokens, so it is monotone.
    low, high = 0, len(cuts) - 1
    while low < high:
        middle = (low + high) // 2
        if await count(keep_from(cuts[middle])) <= budget:
            high = middle
        else:
            low = middle + 1
    fitted = shortest if low == len(cuts) - 1 else keep_from(cuts[low])
    return fitted, len(kept) - len(fitted)


def _cut_points(messages: Sequence[ChatMessage]) -> list[int]:
    """Where the kept history may start, oldest first: each user message that has a non-system
    message before it. Without user messages, any non-tool message (a tool result never starts the
    kept history: its call would be gone)."""
    conversational = [i for i, m in enumerate(messages) if m.role != "system"]
    if len(conversational) < 2:
        return []
    later = conversational[1:]
    starts = [i for i in later if messages[i].role == "user"]
    if any(messages[i].role == "user" for i in conversational):
        return starts
    return [i for i in later if messages[i].role != "tool"]
