"""POST /v1/responses over the chat pipeline, and the stored responses' reads.

A request becomes one chat call: the chain named by ``previous_response_id`` (every earlier input
and output item, tool calls and their outputs included) plus ``instructions`` plus this input. The
answer becomes output items and is stored (``store``, the default) before it is sent. ``background``
stores a queued response and runs the same request on the job queue; the job's run is recognised by
its job id (``AppInvoker`` sends it as the request id, and only server code can make an internal
call) and fills in that stored response.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmserve.api.serving import responses_convert as convert
from llmserve.api.serving import responses_native
from llmserve.api.serving.replies import JsonReply, answer_headers
from llmserve.errors import InvalidRequest, LLMServeError
from llmserve.jobs.units import new_job_id
from llmserve.request_context import RequestContext
from llmserve.schemas.responses import ResponsesRequest
from llmserve.services.chat import ChatAsk, ChatResult, ChatService
from llmserve.services.models import ModelRegistry
from llmserve.services.responses import ResponseStore, StoredResponse, new_response_id
from llmserve.storage.models import utcnow

if TYPE_CHECKING:
    from llmserve.jobs.wiring import Jobs

# Request fields a Response object echoes, with OpenAI's values when the request left them out.
ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "truncation": "disabled",
    "user": None,
    "store": True,
    "background": False,
}


def echo(body: ResponsesRequest) -> dict[str, Any]:
    dumped = body.model_dump(by_alias=True, exclude_none=True)
    fields = {name: dumped.get(name, default) for name, default in ECHOED.items()}
    fields["text"] = dumped.get("text") or {"format": {"type": "text"}}
    return fields


def response_object(response: StoredResponse) -> dict[str, Any]:
    """The SDK's ``Response``: ``output_text`` is the SDK's own property, computed from ``output``."""
    request = response.request
    echoed = {name: request.get(name, default) for name, default in ECHOED.items()}
    completed = response.completed_at
    return {
        "id": response.id,
        "object": "response",
        "created_at": int(response.created_at.timestamp()),
        "status": response.status,
        "completed_at": None if completed is None else int(completed.timestamp()),
        "error": response.error,
        "incomplete_details": None
        if response.incomplete_reason is None
        else {"reason": response.incomplete_reason},
        "model": response.model,
        "output": response.output,
        "previous_response_id": response.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "text": request.get("text") or {"format": {"type": "text"}},
        "usage": response.usage,
        **echoed,
    }


async def chat_ask(
    store: ResponseStore, body: ResponsesRequest, owner: str, registry: ModelRegistry | None = None
) -> tuple[ChatAsk, list[Any]]:
    """The chat call for ``body`` and the request's normalised input items (400s before any work);
    with ``registry``, the client's own body rides along where a native deployment may answer."""
    if body.conversation is not None:
        raise InvalidRequest(
            "conversation is not supported here; chain responses with previous_response_id",
            param="conversation",
        )
    items = await store.resolve(owner, convert.normalized_input(body))
    prior = await store.context_of(owner, body.previous_response_id) if body.previous_response_id else []
    earlier = convert.chat_messages(prior, body.instructions)
    new = convert.chat_messages(items)
    options = convert.options(body)
    if registry is not None and responses_native.reaches_native(registry, body.model):
        carried = responses_native.native_request(body, prior, items, [*earlier, *new])
        options = dataclasses.replace(options, native=carried)
    if body.truncation == "auto":  # the earlier turns may be cut to fit (the newest kept)
        return ChatAsk(new, options, model=body.model, inline_history=earlier), items
    return ChatAsk([*earlier, *new], options, model=body.model), items


def finished(pending: StoredResponse, result: ChatResult) -> StoredResponse:
    choice = result.completion.choices[0]
    pending.model = result.model
    pending.output = convert.output_items(choice, f"msg_{result.message_id}")
    pending.usage = convert.usage_of(result.completion.usage)
    pending.status = "incomplete" if choice.finish_reason == "length" else "completed"
    pending.incomplete_reason = "max_output_tokens" if choice.finish_reason == "length" else None
    pending.completed_at = utcnow()
    return pending


def pending_response(body: ResponsesRequest, owner: str, items: list[Any], model: str) -> StoredResponse:
    request = {**echo(body), "input": items}
    return StoredResponse(
        id=new_response_id(),
        owner=owner,
        model=model,
        request=request,
        previous_response_id=body.previous_response_id,
    )


async def create(
    chat: ChatService, store: ResponseStore, body: ResponsesRequest, ctx: RequestContext
) -> JsonReply:
    ask, items = await chat_ask(store, body, ctx.tenant, chat.registry)
    pending = pending_response(body, ctx.tenant, items, body.model or "")
    result = await chat.answer(ask, ctx)
    response = finished(pending, result)
    if body.store:
        await store.save(response)  # before the body is sent: a GET right after finds it
    return JsonReply(response_object(response), answer_headers(result))


async def submit_background(
    jobs: Jobs | None,
    store: ResponseStore,
    body: ResponsesRequest,
    payload: dict[str, Any],
    ctx: RequestContext,
) -> JsonReply:
    """A queued response now; the job runs this request (``background`` off) and fills it in."""
    if jobs is None:
        raise InvalidRequest("background responses need the job queue (jobs are off)", param="background")
    if not body.store:
        raise InvalidRequest("background responses must be stored: send store true", param="background")
    if body.stream:
        raise InvalidRequest(
            "a background response cannot stream; poll GET /v1/responses/{id}", param="stream"
        )
    _, items = await chat_ask(store, body, ctx.tenant)  # every 400 now, not when the job runs
    pending = pending_response(body, ctx.tenant, items, body.model or "")
    pending.status, pending.job_id = "queued", new_job_id()
    await store.save(pending)
    await jobs.async_jobs.submit(
        owner=ctx.tenant,
        key_id=ctx.principal.key_id,
        endpoint="/v1/responses",
        body={**payload, "background": False, "stream": False},
        callback_url=None,
        priority=body.priority,
        job_id=pending.job_id,
    )
    return JsonReply(response_object(pending))


async def run_background(
    chat: ChatService,
    store: ResponseStore,
    body: ResponsesRequest,
    ctx: RequestContext,
    pending: StoredResponse,
) -> JsonReply:
    """The job's run of a background response: answers and stores into the queued response. The
    chain and the response are the submitter's (``pending.owner``), whoever the job runs as."""
    if not await store.start(pending.id):  # cancelled before it began
        return JsonReply(response_object(await store.get(pending.owner, pending.id)))
    ask, _ = await chat_ask(store, body, pending.owner, chat.registry)
    try:
        result = await chat.answer(ask, ctx)
    except LLMServeError as exc:
        if exc.status_code < 500 and exc.status_code != 429:  # a retry would fail the same way
            pending.status, pending.completed_at = "failed", utcnow()
            pending.error = {"code": exc.code or exc.error_type, "message": exc.message}
            await store.finish(pending)
        raise
    await store.finish(finished(pending, result))
    return JsonReply(response_object(await store.get(pending.owner, pending.id)), answer_headers(result))
