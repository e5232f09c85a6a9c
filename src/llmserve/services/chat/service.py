"""ChatService: the pipeline's entry points, shared by every surface (OpenAI, seed-native, WebSocket,
the async jobs runner).

Each entry point prepares one ``ChatCall`` and hands it to one stage: ``answer`` for a whole reply,
``open_stream`` for a stream. Both end through ``settle``. Streams come back from the router
"primed": their first event is in hand before any byte goes to the client, so up-front errors
(unknown model, prompt too long, every deployment down) become proper HTTP errors and failover
stays invisible to the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from llmserve.observability.context import current_model
from llmserve.observability.metrics import Metrics
from llmserve.principal import Principal
from llmserve.request_context import RequestContext
from llmserve.services.accounting import Accounting
from llmserve.services.admission import Admission
from llmserve.services.chat.answer import answer
from llmserve.services.chat.call import ChatResult, ChatStream
from llmserve.services.chat.pipeline import Pipeline
from llmserve.services.chat.prepare import ChatAsk, prepare_chat, prepare_text
from llmserve.services.chat.stream import open_stream
from llmserve.services.conversations import ConversationService
from llmserve.services.keys import ensure_model_allowed
from llmserve.services.models import ModelRegistry
from llmserve.types import GenerationOptions


class ChatService:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def build(
        cls,
        registry: ModelRegistry,
        conversations: ConversationService,
        accounting: Accounting | None = None,
        admission: Admission | None = None,
        *,
        metrics: Metrics | None = None,
        log_payloads: bool = False,
    ) -> ChatService:
        accounting = accounting or Accounting(registry)
        return cls(Pipeline(registry, conversations, accounting, admission, metrics, log_payloads))

    @property
    def registry(self) -> ModelRegistry:
        return self.pipeline.registry

    @property
    def accounting(self) -> Accounting:
        return self.pipeline.accounting

    def with_accounting(self, accounting: Accounting) -> ChatService:
        """The same pipeline with other accounting (benchmarks compare the ledger on and off)."""
        return ChatService(replace(self.pipeline, accounting=accounting))

    async def answer(self, ask: ChatAsk, ctx: RequestContext | None = None) -> ChatResult:
        return await answer(self.pipeline, await prepare_chat(self.pipeline, ask, ctx, stream=False))

    async def open_stream(self, ask: ChatAsk, ctx: RequestContext | None = None) -> ChatStream:
        return await open_stream(self.pipeline, await prepare_chat(self.pipeline, ask, ctx, stream=True))

    async def answer_text(
        self, prompt: str, options: GenerationOptions, model: str | None, ctx: RequestContext | None = None
    ) -> ChatResult:
        call = prepare_text(self.pipeline, prompt, options, model, ctx, stream=False)
        return await answer(self.pipeline, call)

    async def open_text_stream(
        self, prompt: str, options: GenerationOptions, model: str | None, ctx: RequestContext | None = None
    ) -> ChatStream:
        call = prepare_text(self.pipeline, prompt, options, model, ctx, stream=True)
        return await open_stream(self.pipeline, call)

    async def embed(
        self, texts: Sequence[str], model: str | None, principal: Principal
    ) -> tuple[str, list[list[float]]]:
        """Vectors from the group ``model`` names, if the caller's key may use it (403 otherwise, as
        for chat: a key scoped to some models must not reach the others through embeddings)."""
        group = self.registry.route_group(model, None, None)
        current_model.set(group)
        ensure_model_allowed(principal, group)
        return group, await self.registry.embed(group, texts)
