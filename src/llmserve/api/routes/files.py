"""The Files API (OpenAI's shape): batch inputs in, batch outputs out. Each tenant sees its own."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from llmserve.api.deps import JobsDep
from llmserve.api.serving.batches import file_object
from llmserve.api.serving.convert import request_context
from llmserve.jobs.files import UPLOAD_PURPOSES
from llmserve.schemas.batches import FileDeleted, FileList, FileObject

router = APIRouter(prefix="/v1", tags=["files"])


@router.post("/files", response_model=FileObject)
async def upload_file(
    request: Request,
    jobs: JobsDep,
    file: Annotated[UploadFile, File(description="JSONL, one request per line")],
    # The document names the purposes (so clients, and the fuzz tier, can send a valid one); the
    # check, and its error, stay the service's.
    purpose: Annotated[str, Form(json_schema_extra={"enum": list(UPLOAD_PURPOSES)})],
) -> FileObject:
    content = await jobs.files.read_upload(file)
    owner = request_context(request).tenant
    return file_object(await jobs.files.create(owner, purpose, file.filename or "", content))


@router.get("/files", response_model=FileList)
async def list_files(
    request: Request,
    jobs: JobsDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> FileList:
    files = await jobs.files.list_for(request_context(request).tenant, purpose, limit)
    return FileList(data=[file_object(info) for info in files])


@router.get("/files/{file_id}", response_model=FileObject)
async def get_file(file_id: str, request: Request, jobs: JobsDep) -> FileObject:
    return file_object(await jobs.files.get(request_context(request).tenant, file_id))


@router.get("/files/{file_id}/content")
async def get_file_content(file_id: str, request: Request, jobs: JobsDep) -> Response:
    info, chunks = await jobs.files.open_content(request_context(request).tenant, file_id)
    headers = {"content-disposition": content_disposition(info.filename), "content-length": str(info.bytes)}
    return StreamingResponse(chunks, media_type="application/jsonl", headers=headers)


def content_disposition(filename: str) -> str:
    """RFC 6266: a quoted ASCII fallback (anything else, quotes and backslashes as ``_``) for old
    clients, and the exact name as RFC 5987 ``filename*`` (UTF-8, percent-encoded) for the others."""
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in filename) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.delete("/files/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, request: Request, jobs: JobsDep) -> FileDeleted:
    info = await jobs.files.delete(request_context(request).tenant, file_id)
    return FileDeleted(id=info.id)
