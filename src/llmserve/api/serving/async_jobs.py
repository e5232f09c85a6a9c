"""POST /v1/async/...: the synchronous endpoint's body, checked at once as that endpoint checks it,
queued as a job; 202 with the job and where to poll it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from llmserve.api.errors import describe_validation
from llmserve.api.serving.convert import request_context
from llmserve.api.serving.replies import JsonReply
from llmserve.errors import InvalidRequest

if TYPE_CHECKING:
    from llmserve.jobs.wiring import Jobs

CALLBACK_FIELD = "callback_url"


async def submit(
    jobs: Jobs, endpoint: str, schema: type[BaseModel], payload: dict[str, Any], request: Request
) -> JsonReply:
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
    return JsonReply({**job, "job_id": job["id"]}, {"location": f"/v1/jobs/{job['id']}"}, status=202)
