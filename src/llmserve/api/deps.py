"""FastAPI dependencies: the long-lived objects built in create_app(), looked up on app.state.

They are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in the
thread pool, and that hand-off (a lock, a thread wake-up, the GIL back) cost more than the rest of
the route's own work on the gateway benchmark (docs/benchmarks.md, "Gateway vs LiteLLM").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, WebSocket

from llmserve.config import Settings
from llmserve.errors import NotFound
from llmserve.observability.metrics import Metrics
from llmserve.services.chat import ChatService
from llmserve.services.conversations import ConversationService
from llmserve.services.health import DependencyChecks
from llmserve.services.keys import KeyService
from llmserve.services.models import ModelRegistry
from llmserve.services.usage import UsageLedger
from llmserve.storage.db import Database

if TYPE_CHECKING:
    from llmserve.jobs.wiring import Jobs


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    registry: ModelRegistry
    conversations: ConversationService
    chat: ChatService
    usage: UsageLedger | None = None
    keys: KeyService | None = None
    health: DependencyChecks | None = None
    metrics: Metrics | None = None  # None: observability.metrics is off
    jobs: Jobs | None = None  # async jobs, files and batches


def services_of(request: Request) -> Services:
    """The app's services, for routes that take the raw ``Request`` (the hot POSTs)."""
    services: Services = request.app.state.services
    return services


async def _services(request: Request) -> Services:
    return services_of(request)


def services_for_websocket(websocket: WebSocket) -> Services:
    services: Services = websocket.app.state.services
    return services


async def _chat(request: Request) -> ChatService:
    return services_of(request).chat


async def _conversations(request: Request) -> ConversationService:
    return services_of(request).conversations


async def _registry(request: Request) -> ModelRegistry:
    return services_of(request).registry


async def _usage(request: Request) -> UsageLedger:
    ledger = services_of(request).usage
    if ledger is None:
        raise NotFound("The usage ledger is not enabled on this server", code="usage_disabled")
    return ledger


async def _jobs(request: Request) -> Jobs:
    jobs = services_of(request).jobs
    if jobs is None:
        raise NotFound("Async jobs and batches are not enabled on this server", code="jobs_disabled")
    return jobs


ServicesDep = Annotated[Services, Depends(_services)]
ChatServiceDep = Annotated[ChatService, Depends(_chat)]
ConversationServiceDep = Annotated[ConversationService, Depends(_conversations)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
UsageLedgerDep = Annotated[UsageLedger, Depends(_usage)]
JobsDep = Annotated["Jobs", Depends(_jobs)]
