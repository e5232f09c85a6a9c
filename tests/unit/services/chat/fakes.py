"""A pipeline over hand-written fakes: a scripted provider, conversations and a ledger in memory, and
an admission whose passes record how they are settled. Every fake appends to one shared ``log`` so
tests can check the order of the settle step."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from llmserve.cache.entries import CachedAnswer, CacheRequest
from llmserve.cache.service import ResponseCache
from llmserve.cache.stores import MemoryStore
from llmserve.config import CacheSettings, ExactCacheSettings, GuardrailSettings, Pricing
from llmserve.guardrails import Guardrails
from llmserve.principal import Principal
from llmserve.routing.route_info import RouteInfo
from llmserve.services.accounting import Accounting, Bill
from llmserve.services.admission import Admission, Pass
from llmserve.services.chat.pipeline import Pipeline
from llmserve.services.conversations import ConversationService, Turn
from llmserve.services.models import ModelGroup, ModelRegistry
from llmserve.services.usage import UsageLedger, UsageRecord
from llmserve.types import GenerationInput, Usage
from tests.unit.routing.fakes import FakeClock, FakeProvider, deployment, router

GROUP = "g"
# $1 per 1k prompt tokens, $2 per 1k completion tokens: the provider's Usage(3, 2) costs $0.007.
PRICING = Pricing(input_per_1k=1.0, output_per_1k=2.0)
COST = "0.007"


class RecordingLog(list[str]):
    """What the fakes did, in order."""


class FakeConversations(ConversationService):
    def __init__(self, log: RecordingLog, stored: dict[str, list[Turn]] | None = None) -> None:
        self.log = log
        self.stored: dict[str, list[Turn]] = stored or {}
        self.replies: list[tuple[str, str, str]] = []  # (conversation id, reply, reply id)

    async def history(self, conversation_id: str, *, owner: str = "anonymous") -> list[Turn]:
        return list(self.stored.get(conversation_id, []))

    async def history_if_any(self, conversation_id: str, *, owner: str = "anonymous") -> list[Turn] | None:
        return list(self.stored[conversation_id]) if conversation_id in self.stored else None

    async def record_exchange(
        self,
        conversation_id: str | None,
        new_turns: Sequence[Turn],
        reply: str,
        *,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        create_if_missing: bool = True,
        reply_id: str | None = None,
        owner: str = "anonymous",
    ) -> tuple[str, str]:
        self.log.append("history")
        conversation_id = conversation_id or uuid.uuid4().hex
        turns = self.stored.setdefault(conversation_id, [])
        turns.extend([*new_turns, Turn("assistant", reply)])
        self.replies.append((conversation_id, reply, reply_id or ""))
        return conversation_id, reply_id or ""


class FakeLedger(UsageLedger):
    def __init__(self, log: RecordingLog) -> None:
        self.log = log
        self.rows: list[UsageRecord] = []

    async def record(self, record: UsageRecord) -> None:
        self.log.append("ledger")
        self.rows.append(record)


class RecordingCache(ResponseCache):
    def __init__(self, log: RecordingLog) -> None:
        super().__init__(CacheSettings(exact=ExactCacheSettings(enabled=True)), MemoryStore(100))
        self.log = log

    async def store(self, req: CacheRequest, answer: CachedAnswer) -> None:
        self.log.append("cache")
        await super().store(req, answer)


class CountingAccounting(Accounting):
    bills = 0

    def bill(self, route: RouteInfo, usage: Usage, cache_status: str) -> Bill:
        self.bills += 1
        return super().bill(route, usage, cache_status)


@dataclass
class RecordingPass(Pass):
    log: RecordingLog = field(default_factory=RecordingLog)
    settled: list[tuple[Usage | None, Decimal]] = field(default_factory=list)

    async def settle(self, usage: Usage | None, cost: Decimal) -> None:
        self.log.append("admission")
        self.settled.append((usage, cost))


class FakeAdmission(Admission):
    """Admits everything; input and output guardrails as configured; remembers every pass."""

    def __init__(self, log: RecordingLog, guardrails: GuardrailSettings | None = None) -> None:
        self.log = log
        self.guardrails = Guardrails(guardrails) if guardrails is not None else None
        self.passes: list[RecordingPass] = []

    async def enter(
        self, principal: Principal, tenant: str, group: str, request: GenerationInput, priority: int | None
    ) -> Pass:
        admitted = RecordingPass(request, {"x-ratelimit-remaining-requests": "9"}, log=self.log)
        admitted.guardrails = self.guardrails
        self.passes.append(admitted)
        return admitted


@dataclass
class Fixture:
    pipeline: Pipeline
    provider: FakeProvider
    log: RecordingLog
    conversations: FakeConversations
    ledger: FakeLedger
    admission: FakeAdmission
    accounting: CountingAccounting


def build(
    provider: FakeProvider | None = None,
    *,
    cache: bool = True,
    guardrails: GuardrailSettings | None = None,
    stored: dict[str, list[Turn]] | None = None,
) -> Fixture:
    log = RecordingLog()
    provider = provider or FakeProvider("hello")
    clock = FakeClock()
    routed = deployment(provider, clock, group=GROUP, pricing=PRICING)
    config = routed.config
    registry = ModelRegistry(
        [ModelGroup(GROUP, (provider,), (config,), 0)], GROUP, router({GROUP: [routed]}, clock)
    )
    ledger = FakeLedger(log)
    accounting = CountingAccounting(registry, RecordingCache(log) if cache else None, ledger)
    conversations = FakeConversations(log, stored)
    admission = FakeAdmission(log, guardrails)
    pipeline = Pipeline(registry, conversations, accounting, admission)
    return Fixture(pipeline, provider, log, conversations, ledger, admission, accounting)
