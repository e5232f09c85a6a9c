"""Async jobs: POST /v1/async/{chat/completions,completions,embeddings} → 202; poll or get a callback.

The body is the synchronous endpoint's body (checked the same way, at once) plus an optional
``callback_url``; the job's result is the body the synchronous endpoint would have returned.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.deps import JobsDep
from llmserve.api.serving import async_jobs
from llmserve.api.serving.convert import request_context
from llmserve.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["jobs"])

Payload = Annotated[dict[str, Any], Body()]


@router.post("/async/chat/completions", status_code=202)
async def submit_chat_completion(request: Request, jobs: JobsDep, payload: Payload) -> Response:
    return (
        await async_jobs.submit(jobs, "/v1/chat/completions", ChatCompletionRequest, payload, request)
    ).response()


@router.post("/async/completions", status_code=202)
async def submit_completion(request: Request, jobs: JobsDep, payload: Payload) -> Response:
    return (await async_jobs.submit(jobs, "/v1/completions", CompletionRequest, payload, request)).response()


@router.post("/async/embeddings", status_code=202)
async def submit_embeddings(request: Request, jobs: JobsDep, payload: Payload) -> Response:
    return (await async_jobs.submit(jobs, "/v1/embeddings", EmbeddingRequest, payload, request)).response()


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await jobs.async_jobs.get(request_context(request).tenant, job_id)


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await jobs.async_jobs.cancel(request_context(request).tenant, job_id)
