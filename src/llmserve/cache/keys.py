"""Which requests may be replayed, and the keys their answers are kept under.

A key is the sha256 of a canonical JSON document (sorted keys, floats as floats), so it is the same in
every process and replica. The tenant is part of every key and scope: tenants never share answers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from llmserve.cache.entries import CacheRequest
from llmserve.types import ChatMessage, GenerationOptions

__all__ = ["CacheRequest", "exact_key", "is_cacheable", "semantic_scope", "semantic_text"]

# Bumped when the canonical form changes, so old entries simply stop matching.
KEY_VERSION = 1

# Past this, a prompt is mostly context (a document, code), and two contexts on one topic embed alike
# whatever they ask about: such requests are only ever answered by an exact match.
MAX_SEMANTIC_CHARS = 500


def is_cacheable(req: CacheRequest) -> bool:
    """Whether replaying a stored answer is what the client would have got (or asked for)."""
    options = req.options
    if req.messages is None and req.prompt is None:
        return False
    if options.logprobs:  # a stored answer carries no logprobs
        return False
    if options.n > 1 and options.seed is None and options.temperature > 0:
        return False  # the client wants n different samples; one stored set is not that
    return options.temperature == 0 or options.seed is not None or req.opt_in


def exact_key(req: CacheRequest) -> str:
    key = req.derived_keys.get("exact")
    if key is None:
        key = req.derived_keys["exact"] = _digest(_canonical(req, req.messages))
    return key


def semantic_text(req: CacheRequest) -> str:
    """The text compared by meaning: the last user message of a chat, or ``""`` when there is none."""
    if not req.messages:
        return ""
    last = req.messages[-1]
    if last.role != "user" or last.tool_calls or last.tool_call_id is not None or last.name is not None:
        return ""
    text = last.content.strip()
    return text if len(text) <= MAX_SEMANTIC_CHARS else ""


def semantic_scope(req: CacheRequest, embedding_model: str = "") -> str:
    """Everything but the last user message's words: two requests are compared only within one scope.

    That is the group, tenant, namespace, every sampling option, and the whole earlier conversation
    (system prompts included) verbatim; a paraphrase is only a hit after an identical history.
    """
    memo = "scope:" + embedding_model
    scope = req.derived_keys.get(memo)
    if scope is None:
        earlier = req.messages[:-1] if req.messages else ()
        document = _canonical(req, earlier)
        document["semantic"] = embedding_model  # vectors of two models are not comparable
        scope = req.derived_keys[memo] = _digest(document)
    return scope


def _digest(document: dict[str, Any]) -> str:
    encoded = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(encoded).hexdigest()


def _canonical(req: CacheRequest, messages: tuple[ChatMessage, ...] | None) -> dict[str, Any]:
    return {
        "v": KEY_VERSION,
        "group": req.group,
        "tenant": req.tenant,
        "namespace": req.namespace,
        "messages": None if messages is None else [_message(message) for message in messages],
        "prompt": req.prompt,
        "options": _options(req.options),
    }


def _message(message: ChatMessage) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": list(message.tool_calls),
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def _options(options: GenerationOptions) -> dict[str, Any]:
    # Every field that can change the answer; floats normalised so 0 and 0.0 are one key.
    return {
        "max_tokens": options.max_tokens,
        "clamp_max_tokens": options.clamp_max_tokens,
        "temperature": float(options.temperature),
        "top_p": float(options.top_p),
        "top_k": options.top_k,
        "n": options.n,
        "stop": list(options.stop),
        "seed": options.seed,
        "presence_penalty": float(options.presence_penalty),
        "frequency_penalty": float(options.frequency_penalty),
        "tools": list(options.tools),
        "tool_choice": options.tool_choice,
        "response_format": options.response_format,
        "logprobs": options.logprobs,
        "ignore_eos": options.ignore_eos,
        # A client's own body (Anthropic pass-through) can hold what the fields above cannot (images).
        "native": None if options.native is None else [options.native.body, list(options.native.headers)],
    }
