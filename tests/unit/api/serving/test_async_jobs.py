"""async_jobs: a job's body is checked as the synchronous endpoint checks it, before anything is queued."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.requests import Request

from llmserve.api.serving import async_jobs
from llmserve.errors import InvalidRequest
from llmserve.jobs.async_jobs import AsyncJobService
from llmserve.jobs.wiring import Jobs
from llmserve.schemas.openai import ChatCompletionRequest


class RecordingJobs(AsyncJobService):
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    async def submit(self, **job: Any) -> dict[str, Any]:
        self.submitted.append(job)
        return {"id": "job_1", "object": "job", "status": "queued"}


def jobs_with(recorder: RecordingJobs) -> Jobs:
    return Jobs(files=None, batches=None, async_jobs=recorder, worker=None)  # type: ignore[arg-type]


def request() -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/v1/async/chat/completions", "headers": [], "state": {}}
    )


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_a_valid_body_is_queued_without_its_callback_field_and_answered_202() -> None:
    recorder = RecordingJobs()
    reply = await async_jobs.submit(
        jobs_with(recorder),
        "/v1/chat/completions",
        ChatCompletionRequest,
        {**CHAT, "callback_url": "https://a.example/cb"},
        request(),
    )
    assert reply.status == 202 and reply.headers == {"location": "/v1/jobs/job_1"}
    assert orjson.loads(reply.response().body)["job_id"] == "job_1"
    [job] = recorder.submitted
    assert job["body"] == CHAT and job["callback_url"] == "https://a.example/cb"
    assert job["owner"] == "anonymous" and job["endpoint"] == "/v1/chat/completions"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "stream": True}, "stream"),
        ({**CHAT, "callback_url": 7}, "callback_url"),
    ],
)
async def test_what_the_endpoint_would_refuse_is_refused_before_anything_is_queued(
    payload: dict[str, Any], param: str
) -> None:
    recorder = RecordingJobs()
    with pytest.raises(InvalidRequest) as refused:
        await async_jobs.submit(
            jobs_with(recorder), "/v1/chat/completions", ChatCompletionRequest, payload, request()
        )
    assert refused.value.param == param and recorder.submitted == []
