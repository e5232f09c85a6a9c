"""The Batch API (OpenAI's shape): create from an uploaded file, poll, cancel, download results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request

from llmserve.api.deps import JobsDep
from llmserve.api.serving.batches import batch_object
from llmserve.api.serving.convert import request_context
from llmserve.schemas.batches import BatchCreateRequest, BatchList, BatchObject

router = APIRouter(prefix="/v1", tags=["batches"])


@router.post("/batches", response_model=BatchObject)
async def create_batch(body: BatchCreateRequest, request: Request, jobs: JobsDep) -> BatchObject:
    ctx = request_context(request)
    view = await jobs.batches.create(
        owner=ctx.tenant,
        key_id=ctx.principal.key_id,
        input_file_id=body.input_file_id,
        endpoint=body.endpoint,
        completion_window=body.completion_window,
        metadata=body.metadata,
    )
    return batch_object(view)


@router.get("/batches", response_model=BatchList)
async def list_batches(
    request: Request,
    jobs: JobsDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchList:
    views = await jobs.batches.list_for(request_context(request).tenant, after, limit + 1)
    data = [batch_object(view) for view in views[:limit]]
    return BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(views) > limit,
    )


@router.get("/batches/{batch_id}", response_model=BatchObject)
async def get_batch(batch_id: str, request: Request, jobs: JobsDep) -> BatchObject:
    return batch_object(await jobs.batches.get(request_context(request).tenant, batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(batch_id: str, request: Request, jobs: JobsDep) -> BatchObject:
    return batch_object(await jobs.batches.cancel(request_context(request).tenant, batch_id))
