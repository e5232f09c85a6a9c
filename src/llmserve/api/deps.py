"""FastAPI dependencies: the long-lived objects built in create_app(), looked up on app.state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

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


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def services_for_websocket(websocket: WebSocket) -> Services:
    services: Services = websocket.app.state.services
    return services


def _chat(request: Request) -> ChatService:
    return _services(request).chat


def _conversations(request: Request) -> ConversationService:
    return _services(request).conversations


def _registry(request: Request) -> ModelRegistry:
    return _services(request).registry


def _usage(request: Request) -> UsageLedger:
    ledger = _services(request).usage
    if ledger is None:
        raise NotFound("The usage ledger is not enabled on this server", code="usage_disabled")
    return ledger


ServicesDep = Annotated[Services, Depends(_services)]
ChatServiceDep = Annotated[ChatService, Depends(_chat)]
ConversationServiceDep = Annotated[ConversationService, Depends(_conversations)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
UsageLedgerDep = Annotated[UsageLedger, Depends(_usage)]
