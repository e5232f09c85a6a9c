"""The collaborators every pipeline stage uses, wired once in create_app()."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from llmserve.observability.metrics import Metrics
from llmserve.routing.route_info import RouteInfo
from llmserve.services.accounting import Accounting
from llmserve.services.admission import Admission
from llmserve.services.chat.call import ChatCall, gateway_overhead_ms
from llmserve.services.conversations import ConversationService
from llmserve.services.models import ModelRegistry

# The pipeline's log events (llm_request, llm_response) carry this logger's name.
logger = logging.getLogger("llmserve.services.chat")


@dataclass(frozen=True)
class Pipeline:
    registry: ModelRegistry
    conversations: ConversationService
    accounting: Accounting
    admission: Admission | None = None
    metrics: Metrics | None = None
    log_payloads: bool = False  # prompt and answer text in llm_* events (PII masked)

    def observe_overhead(self, route: RouteInfo, started: float) -> None:
        if self.metrics is not None:  # what x-llmserve-overhead-ms says, in seconds
            self.metrics.observe_overhead(gateway_overhead_ms(route, started) / 1000)


async def release(call: ChatCall) -> None:
    """A call that produced nothing billable (it failed, or its client left): give its slots back."""
    if call.admitted is not None:
        await call.admitted.settle(None, Decimal(0))
