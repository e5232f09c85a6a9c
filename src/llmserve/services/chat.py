"""ChatService: the request pipeline shared by the OpenAI, seed-native and WebSocket surfaces.

Resolve the model group, load stored history, route the call (router: deployment choice, retries,
fallbacks, hedging), store the exchange. Streams come back from the router "primed": their first
event is in hand before any byte goes to the client, so up-front errors (unknown model, prompt too
long, every deployment down) become proper HTTP errors and failover stays invisible to the client.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from llmserve.errors import ConversationNotFound
from llmserve.providers.base import (
    ChatInput,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    StreamEvent,
    TextInput,
    Usage,
)
from llmserve.routing.router import RouteInfo
from llmserve.services.conversations import ConversationService, Turn
from llmserve.services.models import ModelRegistry


@dataclass
class ChatResult:
    model: str
    completion: Completion
    message_id: str
    conversation_id: str | None
    context: list[ChatMessage]
    latency_ms: float
    route: RouteInfo
    started: float  # perf_counter() when the request entered the service

    @property
    def text(self) -> str:
        return self.completion.choices[0].text


@dataclass
class ChatStream:
    """A started stream: metadata known up front, then ``events``. Stores the exchange when it ends."""

    model: str
    message_id: str
    conversation_id: str | None
    created: int
    events: AsyncIterator[StreamEvent]
    route: RouteInfo
    started: float
    text_parts: list[str] = field(default_factory=list)
    usage: Usage | None = None


def gateway_overhead_ms(route: RouteInfo, started: float) -> float:
    """Time spent in llmserve itself: wall time so far minus waiting on providers (and backoff)."""
    return max(0.0, (time.perf_counter() - started - route.upstream_seconds) * 1000)


class ChatService:
    def __init__(self, registry: ModelRegistry, conversations: ConversationService) -> None:
        self.registry = registry
        self.conversations = conversations

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        store: bool = False,
        inline_history: Sequence[ChatMessage] = (),
        requirements: str | None = None,
    ) -> ChatResult:
        started = time.perf_counter()
        context, new_turns = await self._context(conversation_id, inline_history, messages)
        request = ChatInput(tuple(context), options)
        group = self.registry.route_group(model, request, requirements)
        completion, route = await self.registry.router.complete(group, request)
        message_id = uuid.uuid4().hex
        if store or conversation_id is not None:
            conversation_id = await self._record(
                conversation_id,
                new_turns,
                completion.choices[0].text,
                route.group,
                completion.usage,
                message_id,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        return ChatResult(
            route.group, completion, message_id, conversation_id, context, latency_ms, route, started
        )

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        store: bool = False,
        inline_history: Sequence[ChatMessage] = (),
        requirements: str | None = None,
    ) -> ChatStream:
        started = time.perf_counter()
        context, new_turns = await self._context(conversation_id, inline_history, messages)
        if store and conversation_id is None:
            conversation_id = uuid.uuid4().hex
        request = ChatInput(tuple(context), options)
        group = self.registry.route_group(model, request, requirements)
        # The router hands the stream back once its first event is in hand: failover happens before.
        events, route = await self.registry.router.stream(group, request)
        stream = ChatStream(
            route.group, uuid.uuid4().hex, conversation_id, int(time.time()), _empty(), route, started
        )
        persist = store or conversation_id is not None
        stream.events = self._tracked(stream, events, new_turns, persist)
        return stream

    async def complete_text(self, prompt: str, options: GenerationOptions, model: str | None) -> ChatResult:
        started = time.perf_counter()
        request = TextInput(prompt, options)
        group = self.registry.route_group(model, request, None)
        completion, route = await self.registry.router.complete(group, request)
        latency_ms = (time.perf_counter() - started) * 1000
        return ChatResult(route.group, completion, uuid.uuid4().hex, None, [], latency_ms, route, started)

    async def stream_text(self, prompt: str, options: GenerationOptions, model: str | None) -> ChatStream:
        started = time.perf_counter()
        request = TextInput(prompt, options)
        group = self.registry.route_group(model, request, None)
        events, route = await self.registry.router.stream(group, request)
        stream = ChatStream(route.group, uuid.uuid4().hex, None, int(time.time()), _empty(), route, started)
        stream.events = self._tracked(stream, events, [], False)
        return stream

    async def embed(self, texts: Sequence[str], model: str | None) -> tuple[str, list[list[float]]]:
        group = self.registry.route_group(model, None, None)
        return group, await self.registry.embed(group, texts)

    async def _context(
        self,
        conversation_id: str | None,
        inline_history: Sequence[ChatMessage],
        messages: Sequence[ChatMessage],
    ) -> tuple[list[ChatMessage], list[ChatMessage]]:
        """The model's context and the turns to store.

        A stored conversation is the history and the body's inline history is ignored, so seed clients
        that echo back the returned history alongside a conversation_id get no duplicates. A new
        conversation (no id, or a client-chosen id not seen before) starts from the inline history.
        """
        stored: list[ChatMessage] = []
        if conversation_id is not None:
            try:
                stored = [
                    ChatMessage(t.role, t.content) for t in await self.conversations.history(conversation_id)
                ]
            except ConversationNotFound:
                stored = []
        if stored:
            return [*stored, *messages], list(messages)
        return [*inline_history, *messages], [*inline_history, *messages]

    async def _tracked(
        self,
        stream: ChatStream,
        events: AsyncIterator[StreamEvent],
        new_messages: Sequence[ChatMessage],
        persist: bool,
    ) -> AsyncIterator[StreamEvent]:
        try:
            async for event in events:
                if isinstance(event, Usage):
                    stream.usage = event
                elif isinstance(event, Delta) and event.index == 0:
                    stream.text_parts.append(event.text)
                yield event
        finally:
            # At once, not at garbage collection: this is how a client's disconnect reaches the upstream.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        # Only a stream that ran to its end is stored; a client that left gets nothing half-written.
        if persist and stream.usage is not None:
            await self._record(
                stream.conversation_id,
                new_messages,
                "".join(stream.text_parts),
                stream.model,
                stream.usage,
                stream.message_id,
            )

    async def _record(
        self,
        conversation_id: str | None,
        messages: Sequence[ChatMessage],
        reply: str,
        model: str,
        usage: Usage,
        message_id: str,
    ) -> str:
        conversation_id, _ = await self.conversations.record_exchange(
            conversation_id,
            [Turn(m.role, m.content) for m in messages],
            reply,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reply_id=message_id,
        )
        return conversation_id


async def _empty() -> AsyncIterator[StreamEvent]:
    return
    yield  # pragma: no cover - makes this an async generator
