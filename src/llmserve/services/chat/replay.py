"""Answers as streams and streams as answers: replaying a cached completion, collecting a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llmserve.types import Choice, Completion, Delta, FinishReason, StreamEvent, Usage

REPLAY_PIECE_CHARS = 64  # a cached answer streams in pieces, as a live one would


async def replay(completion: Completion) -> AsyncIterator[StreamEvent]:
    """A stored completion as the events a live stream would have produced (then one Usage)."""
    for choice in completion.choices:
        text = choice.text
        for start in range(0, len(text), REPLAY_PIECE_CHARS):
            yield Delta(choice.index, text[start : start + REPLAY_PIECE_CHARS])
        if choice.tool_calls:
            # Stream fragments carry their position in the list as "index".
            calls = tuple({"index": i, **call} for i, call in enumerate(choice.tool_calls))
            yield Delta(choice.index, "", tool_calls=calls)
        yield Delta(choice.index, "", choice.finish_reason)
    yield completion.usage


@dataclass
class StreamCollector:
    """Rebuilds the Completion a stream amounted to, so a streamed answer can be cached too.

    Streams with tool calls are not rebuilt (their fragments need the upstream's own merging rules);
    ``completion()`` is None for them and for streams that did not end.
    """

    texts: dict[int, list[str]] = field(default_factory=dict)
    finishes: dict[int, FinishReason] = field(default_factory=dict)
    usage: Usage | None = None
    had_tool_calls: bool = False

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, Usage):
            self.usage = event
            return
        self.texts.setdefault(event.index, []).append(event.text)
        if event.tool_calls:
            self.had_tool_calls = True
        if event.finish_reason is not None:
            self.finishes[event.index] = event.finish_reason

    def text(self, index: int = 0) -> str:
        return "".join(self.texts.get(index, []))

    def completion(self) -> Completion | None:
        if self.usage is None or self.had_tool_calls or set(self.finishes) != set(self.texts):
            return None
        choices = [Choice(i, self.text(i), self.finishes[i]) for i in sorted(self.texts)]
        return Completion(choices=choices, usage=self.usage)
