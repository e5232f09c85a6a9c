"""Every operation of the document, positive and negative data, with authentication off and on.

Fails on a 5xx, a status the operation does not document, a body or content type that does not
match the document, and a request the schema forbids (``max_tokens: "64"``) that is not refused.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode, HookContext

from llmserve.app import create_app
from llmserve.config import BUNDLED_MODEL_ID
from tests.fuzz.conftest import MASTER, LongLived, fuzz_settings

SEED = 20261206  # fixed, with deterministic generation: CI runs the same cases every time
MAX_EXAMPLES = 25  # per operation and mode; hypothesis stops earlier where it runs out of cases

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
# A schema-violating request is refused with any documented 4xx; 413 (a string over maxLength can
# be over the body or guardrail limit first) is one of ours, which schemathesis's default list lacks.
REJECTED = ["400", "401", "403", "404", "409", "413", "429"]


def fuzz_config(*, secured: bool, mode: str = "all") -> schemathesis.Config:
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    checks["negative_data_rejection"]["expected-statuses"] = REJECTED
    checks["ignored_auth"] = {"enabled": secured}
    data: dict[str, Any] = {
        "seed": SEED,
        "generation": {"mode": mode, "max-examples": MAX_EXAMPLES, "deterministic": True},
        "checks": checks,
    }
    if secured:
        data["auth"] = {"openapi": {"bearer": {"bearer": MASTER}}}
    return schemathesis.Config.from_dict(data)


def _document() -> dict[str, Any]:
    # The document does not depend on the data directory (nothing is opened before the lifespan).
    settings = fuzz_settings(Path(tempfile.gettempdir()) / "llmserve-fuzz-unused", secured=False)
    document: dict[str, Any] = create_app(settings).openapi()
    return document


DOCUMENT = _document()
# Every operation, the Anthropic (/v1/messages) and Ollama (/api/*) surfaces included.
open_api = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config(secured=False))
secured_api = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config(secured=True))


def served_model_half_the_time(context: HookContext, case: Case[Any]) -> SearchStrategy[Case[Any]]:
    """A positive case's ``model`` is a random name (an honest 404) half the time, the served model
    the other half: without it, nearly every generation case ends at "model not found" and the
    answers, their streams and their schemas go untested."""
    body = case.body
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if not positive or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return st.just(case)

    def named(served: bool) -> Case[Any]:
        if served:
            case.body = {**body, "model": BUNDLED_MODEL_ID}
        return case

    return st.booleans().map(named)


for api in (open_api, secured_api):
    api.hook("flatmap_case")(served_model_half_the_time)

# Answers the fuzzer must reach, or it is only testing refusals: (operation, what answered).
MUST_REACH = {
    ("POST /v1/chat/completions", "application/json"),
    ("POST /v1/chat/completions", "text/event-stream"),
    ("POST /v1/completions", "application/json"),
    ("POST /v1/completions", "text/event-stream"),
    ("POST /chat/new/message/", "application/json"),
    ("POST /chat/stream", "text/event-stream"),
    ("GET /chat/stream", "text/event-stream"),
    ("POST /chat", "application/json"),
    ("POST /v1/tokenize", "application/json"),
    ("POST /v1/files", "application/json"),
    ("POST /admin/keys", "application/json"),
}


def check(case: Case[Any], app: LongLived, answers: Counter[tuple[str, str]]) -> None:
    # On the schema as well: checks that replay a case (ignored_auth) send it to the schema's app.
    case.operation.schema.app = app
    response = case.call_and_validate(app=app)
    if response.status_code < 300:
        media_type = response.headers.get("content-type", [""])[0].split(";")[0]
        answers[case.operation.label, media_type] += 1


@open_api.parametrize()
def test_auth_off(
    case: Case[Any], open_app: LongLived, cases_sent: Counter[str], answers: Counter[tuple[str, str]]
) -> None:
    cases_sent["auth off"] += 1
    check(case, open_app, answers)


@secured_api.parametrize()
def test_auth_on(
    case: Case[Any], secured_app: LongLived, cases_sent: Counter[str], answers: Counter[tuple[str, str]]
) -> None:
    cases_sent["auth on"] += 1
    check(case, secured_app, answers)


def test_the_cases_reached_the_answers_not_only_the_refusals(answers: Counter[tuple[str, str]]) -> None:
    # Runs after the two above (pytest keeps a module's order); alone, there is nothing to judge.
    if not answers:
        pytest.skip("no fuzz case ran in this session")
    assert set(answers) >= MUST_REACH, sorted(MUST_REACH - set(answers))
