"""POST /v1/async/...: the synchronous endpoint's body, checked at once as that endpoint checks it,
queued as a job; 202 with the job and where to poll it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from llmserve.api.deps import services_of
from llmserve.api.errors import describe_validation
from llmserve.api.serving.convert import request_context
from llmserve.api.serving.replies import JsonReply
from llmserve.errors import InvalidRequest
from llmserve.principal import Principal
from llmserve.services.keys import ensure_model_allowed
from llmserve.services.models import AUTO_MODEL

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
    _ensure_model_allowed(request, ctx.principal, getattr(parsed, "model", None))
    job = await jobs.async_jobs.submit(
        owner=ctx.tenant,
        key_id=ctx.principal.key_id,
        endpoint=endpoint,
        body=body,
        callback_url=callback_url,
        priority=getattr(parsed, "priority", None),
    )
    return JsonReply({**job, "job_id": job["id"]}, {"location": f"/v1/jobs/{job['id']}"}, status=202)


def _ensure_model_allowed(request: Request, principal: Principal, model: object) -> None:
    """403 at submit, as the synchronous endpoint answers, for a group the key may not use. ``auto``
    picks its group from the prompt when the job runs; that choice is checked then."""
    if principal.models is None:
        return
    registry = services_of(request).registry
    name = model if isinstance(model, str) and model else registry.default_model
    if name != AUTO_MODEL or any(group.name == name for group in registry.groups()):
        ensure_model_allowed(principal, name)
