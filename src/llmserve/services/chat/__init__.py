"""The request pipeline, by stage: prepare → admit and look up → answer | stream → settle."""

from llmserve.services.chat.call import COST_HEADER, ChatCall, ChatResult, ChatStream, gateway_overhead_ms
from llmserve.services.chat.prepare import ChatAsk
from llmserve.services.chat.service import ChatService

__all__ = [
    "COST_HEADER",
    "ChatAsk",
    "ChatCall",
    "ChatResult",
    "ChatService",
    "ChatStream",
    "gateway_overhead_ms",
]
