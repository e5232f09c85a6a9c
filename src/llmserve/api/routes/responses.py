"""The OpenAI Responses API: POST /v1/responses (JSON or typed events), and the stored responses:
GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST /v1/responses/{id}/cancel.

The POST is a ``HotRoute`` (it reads its own body and checks the key, as /v1/chat/completions does);
the rest are ordinary FastAPI routes behind the app's key check.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.body import authenticated_body
from llmserve.api.deps import ServicesDep, services_of
from llmserve.api.hot_route import HotRoute
from llmserve.api.serving import convert, openai_responses, openai_responses_stream
from llmserve.observability.context import request_id_var
from llmserve.principal import INTERNAL_PRINCIPAL_SCOPE_KEY
from llmserve.schemas.responses import DeletedResponse, InputItemList, ResponseObject, ResponsesRequest
from llmserve.services.responses import FINISHED, ResponseStore

router = APIRouter(prefix="/v1/responses", tags=["responses"])


async def create_response(request: Request) -> Response:
    """A model response; with ``previous_response_id`` it continues a stored one."""
    body = await authenticated_body(request, ResponsesRequest)
    services = services_of(request)
    store = ResponseStore(services.database)
    ctx = convert.request_context(request, priority=body.priority)
    if request.scope.get(INTERNAL_PRINCIPAL_SCOPE_KEY) is not None:
        # Only server code makes internal calls; the job of a background response runs as its id.
        pending = await store.by_job(request_id_var.get())
        if pending is not None:
            return (
                await openai_responses.run_background(services.chat, store, body, ctx, pending)
            ).response()
    if body.background:
        payload = body.model_dump(by_alias=True, exclude_none=True)
        reply = await openai_responses.submit_background(services.jobs, store, body, payload, ctx)
        return reply.response()
    if body.stream:
        return (await openai_responses_stream.stream(services.chat, store, body, ctx)).response()
    return (await openai_responses.create(services.chat, store, body, ctx)).response()


hot_routes = [
    HotRoute(
        "/v1/responses",
        create_response,
        body=ResponsesRequest,
        response=ResponseObject,
        tags=["responses"],
        example={"input": "Say hello in three words.", "max_output_tokens": 32},
    )
]


@router.get("/{response_id}", response_model=ResponseObject)
async def retrieve_response(response_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    store = ResponseStore(services.database)
    owner = convert.request_context(request).tenant
    response = await store.get(owner, response_id)
    if response.status not in FINISHED and response.job_id is not None and services.jobs is not None:
        # A job that gave up (its retries spent) never reached the response: say how it ended.
        job = await services.jobs.async_jobs.get(owner, response.job_id)
        if job["status"] in ("failed", "cancelled"):
            response.status = job["status"]
            response.error = job.get("error") if job["status"] == "failed" else None
    return openai_responses.response_object(response)


@router.delete("/{response_id}", response_model=DeletedResponse)
async def delete_response(response_id: str, request: Request, services: ServicesDep) -> DeletedResponse:
    store = ResponseStore(services.database)
    await store.delete(convert.request_context(request).tenant, response_id)
    return DeletedResponse(id=response_id)


@router.post("/{response_id}/cancel", response_model=ResponseObject)
async def cancel_response(response_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    store = ResponseStore(services.database)
    owner = convert.request_context(request).tenant
    response = await store.cancel(owner, response_id)
    if response.status == "cancelled" and response.job_id is not None and services.jobs is not None:
        job = await services.jobs.async_jobs.get(owner, response.job_id)
        if job["status"] not in ("completed", "failed", "cancelled"):
            await services.jobs.async_jobs.cancel(owner, response.job_id)
    return openai_responses.response_object(response)


@router.get("/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
    response_id: str,
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> InputItemList:
    """The items the response was given as input (newest first unless ``order=asc``)."""
    store = ResponseStore(services.database)
    items = (await store.get(convert.request_context(request).tenant, response_id)).input_items
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return InputItemList(
        data=page,
        first_id=page[0]["id"] if page else None,
        last_id=page[-1]["id"] if page else None,
        has_more=len(ordered) > limit,
    )
