"""A client's own Messages body on its way to an Anthropic upstream (``types.NativeRequest``).

``api/serving/anthropic_native.py`` decides which requests carry one; here the provider reads it: the
body goes as sent while the pipeline left its messages alone, the client's protocol headers always.
"""

from __future__ import annotations

from typing import Any

from llmserve.config import ModelDeployment
from llmserve.errors import InvalidRequest, UpstreamError
from llmserve.types import ChatInput, GenerationInput, NativeRequest

# The client's protocol headers an Anthropic upstream gets as they came (the version it speaks, the
# betas it opted into); its credentials and everything else are the deployment's own.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def native_payload(
    deployment: ModelDeployment, request: GenerationInput, stream: bool
) -> dict[str, Any] | None:
    """The client's Messages body as it came, with this deployment's model, where the request still
    holds exactly the messages translated from it; None where it must be translated."""
    native = request.options.native
    if native is None or native.protocol != "anthropic" or not isinstance(request, ChatInput):
        return None
    if request.messages != native.messages:
        if not native.translatable:
            raise InvalidRequest(
                f"Model '{deployment.name}': the request's images or other non-text blocks cannot be sent "
                "once the input guardrails or the context fit rewrote its messages",
                param="messages",
            )
        return None
    payload = {k: v for k, v in native.body.items() if k != "stream"}
    payload["model"] = deployment.model
    payload["max_tokens"] = request.options.max_tokens or payload.get("max_tokens")
    if stream:
        payload["stream"] = True
    return payload


def forwarded_headers(request: GenerationInput | NativeRequest) -> dict[str, str]:
    native = request if isinstance(request, NativeRequest) else request.options.native
    if native is None or native.protocol != "anthropic":
        return {}
    return {name: value for name, value in native.headers if name in FORWARDED_HEADERS}


def counted_tokens(body: Any, deployment: str) -> int:
    count = body.get("input_tokens") if isinstance(body, dict) else None
    if not isinstance(count, int):
        raise UpstreamError(
            f"{deployment}: count_tokens answered without input_tokens", kind="protocol", retryable=True
        )
    return count
