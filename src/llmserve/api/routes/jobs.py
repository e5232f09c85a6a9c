"""Async jobs: POST /v1/async/{chat/completions,completions,embeddings} → 202; poll or get a callback.

The body is the synchronous endpoint's body (checked the same way, at once) plus an optional
``callback_url``; the job's result is the body the synchronous endpoint would have returned.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from llmserve.api.deps import JobsDep
from llmserve.api.errors import describe_validation
from llmserve.api.serving.convert import request_context
from llmserve.errors import InvalidRequest
from llmserve.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["jobs"])

CALLBACK_FIELD = "callback_url"
Payload = Annotated[dict[str, Any], Body()]


async def _submit(
    endpoint: str, schema: type[BaseModel], payload: dict[str, Any], request: Request, jobs: JobsDep
) -> JSONResponse:
    body = dict(payload)
    callback_url = body.pop(CALLBACK_FIELD, None)
    if callback_url is not None and not isinstance(callback_url, str):
        raise InvalidRequest("callback_url must be a string", param=CALLBACK_FIELD)
    try:
        parsed = schema.model_validate(body)
    except ValidationError as exc:
        # Worded as the synchronous endpoint words the same mistake.
        message, param = describe_validation(RequestValidationError(exc.errors()))
        raise InvalidRequest(message, param=param) from exc
    if getattr(parsed, "stream", False):
        raise InvalidRequest("An async job cannot stream; poll GET /v1/jobs/{id} instead", param="stream")
    ctx = request_context(request)
    job = await jobs.async_jobs.submit(
        owner=ctx.tenant,
        key_id=ctx.principal.key_id,
        endpoint=endpoint,
        body=body,
        callback_url=callback_url,
        priority=getattr(parsed, "priority", None),
    )
    return JSONResponse(
        {**job, "job_id": job["id"]}, status_code=202, headers={"location": f"/v1/jobs/{job['id']}"}
    )


@router.post("/async/chat/completions", status_code=202)
async def submit_chat_completion(request: Request, jobs: JobsDep, payload: Payload) -> JSONResponse:
    return await _submit("/v1/chat/completions", ChatCompletionRequest, payload, request, jobs)


@router.post("/async/completions", status_code=202)
async def submit_completion(request: Request, jobs: JobsDep, payload: Payload) -> JSONResponse:
    return await _submit("/v1/completions", CompletionRequest, payload, request, jobs)


@router.post("/async/embeddings", status_code=202)
async def submit_embeddings(request: Request, jobs: JobsDep, payload: Payload) -> JSONResponse:
    return await _submit("/v1/embeddings", EmbeddingRequest, payload, request, jobs)


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await jobs.async_jobs.get(request_context(request).tenant, job_id)


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await jobs.async_jobs.cancel(request_context(request).tenant, job_id)
