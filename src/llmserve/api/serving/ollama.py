"""POST /api/chat and /api/generate: Ollama's bodies → the pipeline → Ollama's body, or NDJSON lines.

``/api/generate`` is a chat of one user turn (plus ``system``) so the model's chat template applies,
as Ollama applies its template; ``raw: true`` sends the prompt as it is (the text-completion path).
A request with no messages (no prompt) loads the model and answers ``done_reason: "load"``.
What the pipeline cannot do is refused with a 400 naming the field: images, thinking, Go templates,
``suffix`` (fill-in-the-middle) and ``context`` (token ids of an earlier answer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from llmserve.api.serving.ollama_models import group_name, ollama_name
from llmserve.api.serving.ollama_stream import (
    Lines,
    NdjsonReply,
    chat_body,
    created_at,
    generate_body,
    stream_lines,
)
from llmserve.api.serving.replies import JsonReply, answer_headers, route_headers, stream_headers
from llmserve.errors import InvalidRequest
from llmserve.request_context import RequestContext
from llmserve.schemas.ollama import (
    Format,
    KeepAlive,
    OllamaChatRequest,
    OllamaGenerateRequest,
    OllamaMessage,
    OllamaOptions,
    OllamaToolCall,
    keep_alive_seconds,
)
from llmserve.services.chat import ChatAsk, ChatService, ChatStream
from llmserve.services.keys import ensure_model_allowed
from llmserve.services.models import LocallyManaged, ModelRegistry
from llmserve.types import ChatMessage, GenerationOptions

Reply = JsonReply | NdjsonReply


def response_format(value: Format) -> dict[str, Any] | None:
    """Ollama's ``format`` as the pipeline's response_format: providers with structured output act
    on it, the others refuse it (400)."""
    if not value:
        return None
    if value == "json":
        return {"type": "json_object"}
    assert isinstance(value, dict)  # the schema admits "", "json" or an object
    # Not "strict": OpenAI's strict mode refuses schemas without additionalProperties: false on every
    # object, which Ollama's clients do not send (pydantic's model_json_schema() has none); servers
    # with guided decoding (vLLM, llama.cpp) hold the answer to the schema either way.
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": value, "strict": False}}


def generation_options(
    options: OllamaOptions | None, format_: Format, tools: Sequence[dict[str, Any]] = ()
) -> GenerationOptions:
    o = options or OllamaOptions()
    return GenerationOptions(
        # Ollama's -1 (no limit), -2 (fill the context) and 0 leave the length to the deployment.
        max_tokens=o.num_predict if o.num_predict and o.num_predict > 0 else None,
        temperature=1.0 if o.temperature is None else o.temperature,
        top_p=1.0 if o.top_p is None else o.top_p,
        top_k=o.top_k or 0,
        stop=tuple(o.stop or ()),
        seed=o.seed if o.seed is not None and o.seed >= 0 else None,
        presence_penalty=o.presence_penalty or 0.0,
        frequency_penalty=o.frequency_penalty or 0.0,
        tools=tuple(tools),
        response_format=response_format(format_),
        # num_predict is a cap in Ollama: a long prompt shortens the answer instead of failing it.
        clamp_max_tokens=True,
    )


def _refuse_thinking(think: bool | str | None) -> None:
    if think:
        raise InvalidRequest(
            "think is not supported: llmserve does not pass reasoning controls to models", param="think"
        )


def _openai_call(message_index: int, call_index: int, call: OllamaToolCall) -> dict[str, Any]:
    arguments = call.function.arguments
    return {
        # Ollama's calls carry no id; OpenAI-compatible upstreams pair results to calls by one.
        "id": f"call_{message_index}_{call_index}",
        "type": "function",
        "function": {
            "name": call.function.name,
            "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode(),
        },
    }


def _take_call(pending: list[tuple[str, str]], tool_name: str | None) -> str | None:
    """The id of the call a tool result answers: the one of that name, else the next in order."""
    for position, (call_id, name) in enumerate(pending):
        if tool_name is None or name == tool_name:
            del pending[position]
            return call_id
    return None


def chat_messages(messages: Sequence[OllamaMessage]) -> list[ChatMessage]:
    pending: list[tuple[str, str]] = []
    converted = []
    for position, message in enumerate(messages):
        if message.images:
            raise InvalidRequest("Images are not supported: send text", param=f"messages.{position}.images")
        content = message.content or ""
        if message.tool_calls:
            calls = tuple(_openai_call(position, i, c) for i, c in enumerate(message.tool_calls))
            pending = [(c["id"], c["function"]["name"]) for c in calls]
            converted.append(ChatMessage(message.role, content, tool_calls=calls))
        elif message.role == "tool":
            call_id = _take_call(pending, message.tool_name)
            converted.append(ChatMessage("tool", content, tool_call_id=call_id, name=message.tool_name))
        else:
            converted.append(ChatMessage(message.role, content))
    return converted


def chat_ask(registry: ModelRegistry, body: OllamaChatRequest) -> ChatAsk:
    _refuse_thinking(body.think)
    options = generation_options(body.options, body.format, body.tools or ())
    return ChatAsk(chat_messages(body.messages), options, model=group_name(registry, body.model))


def _refuse_generate_fields(body: OllamaGenerateRequest) -> None:
    _refuse_thinking(body.think)
    if body.raw and (body.system or body.template or body.context):
        raise InvalidRequest("raw mode does not support template, system, or context", param="raw")
    if body.template:
        raise InvalidRequest(
            "template is not supported: the model's own chat template applies (none with raw: true)",
            param="template",
        )
    if body.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    if body.context:
        raise InvalidRequest(
            "context (token ids of an earlier answer) is not supported: send the turns to /api/chat",
            param="context",
        )
    if body.images:
        raise InvalidRequest("Images are not supported: send text", param="images")


def _model_out(requested: str | None, group: str) -> str:
    # Ollama answers with the name the client asked for; clients match replies to their pick by it.
    return requested or ollama_name(group)


async def chat(service: ChatService, body: OllamaChatRequest, ctx: RequestContext) -> Reply:
    if not body.messages:
        return await load(service.registry, body.model, body.keep_alive, ctx, chat=True)
    ask = chat_ask(service.registry, body)
    if body.stream:
        started = await service.open_stream(ask, ctx)
        lines = Lines(_model_out(body.model, started.model), chat=True)
        return NdjsonReply(stream_lines(started, lines), stream_headers(started))
    result = await service.answer(ask, ctx)
    return JsonReply(chat_body(result, _model_out(body.model, result.model)), answer_headers(result))


async def generate(service: ChatService, body: OllamaGenerateRequest, ctx: RequestContext) -> Reply:
    if not body.prompt:
        return await load(service.registry, body.model, body.keep_alive, ctx, chat=False)
    _refuse_generate_fields(body)
    options = generation_options(body.options, body.format)
    model = group_name(service.registry, body.model)
    if body.raw:
        return await _generate_raw(service, body, body.prompt, options, model, ctx)
    turns = [ChatMessage("system", body.system)] if body.system else []
    ask = ChatAsk([*turns, ChatMessage("user", body.prompt)], options, model=model)
    if body.stream:
        return _generate_lines(await service.open_stream(ask, ctx), body.model)
    result = await service.answer(ask, ctx)
    return JsonReply(generate_body(result, _model_out(body.model, result.model)), answer_headers(result))


async def _generate_raw(
    service: ChatService,
    body: OllamaGenerateRequest,
    prompt: str,
    options: GenerationOptions,
    model: str | None,
    ctx: RequestContext,
) -> Reply:
    if body.stream:
        return _generate_lines(await service.open_text_stream(prompt, options, model, ctx), body.model)
    result = await service.answer_text(prompt, options, model, ctx)
    return JsonReply(generate_body(result, _model_out(body.model, result.model)), route_headers(result))


def _generate_lines(started: ChatStream, requested: str | None) -> NdjsonReply:
    lines = Lines(_model_out(requested, started.model), chat=False)
    return NdjsonReply(stream_lines(started, lines), stream_headers(started))


async def load(
    registry: ModelRegistry, model: str | None, keep_alive: KeepAlive, ctx: RequestContext, *, chat: bool
) -> JsonReply:
    """An empty request: load the group's local models (a remote one is always ready) and say so."""
    if keep_alive_seconds(keep_alive) == 0:
        raise InvalidRequest(
            "Unloading a model on request (keep_alive 0) is not supported: llmserve unloads idle local "
            "models on its own schedule (models[].idle_unload_seconds)",
            param="keep_alive",
        )
    group = registry.group(group_name(registry, model))
    ensure_model_allowed(ctx.principal, group.name)
    started = time.perf_counter()
    for provider in group.providers:
        if isinstance(provider, LocallyManaged):
            await provider.manager.get()
    took = int((time.perf_counter() - started) * 1_000_000_000)
    empty = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
    body = {"model": _model_out(model, group.name), "created_at": created_at(), **empty}
    return JsonReply(
        {**body, "done": True, "done_reason": "load", "total_duration": took, "load_duration": took}
    )
