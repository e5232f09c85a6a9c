"""Every operation of the document, positive and negative data, with authentication off and on.

Fails on a 5xx, a status the operation does not document, a body or content type that does not
match the document, and a request the schema forbids (``max_tokens: "64"``) that is not refused.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis import Case

from llmserve.app import create_app
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


def fuzz_config(*, secured: bool) -> schemathesis.Config:
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    checks["negative_data_rejection"]["expected-statuses"] = REJECTED
    checks["ignored_auth"] = {"enabled": secured}
    data: dict[str, Any] = {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
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


# Surfaces still landing while this tier was written (the Anthropic Messages API, Ollama's /api/*):
# they are fuzzed once they land. Found meanwhile: /v1/messages/count_tokens takes a string
# ``tool_choice.disable_parallel_tool_use`` where its schema says boolean (lax coercion).
NOT_YET_FUZZED = r"^/v1/messages|^/api/"

DOCUMENT = _document()
open_api = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config(secured=False)).exclude(
    path_regex=NOT_YET_FUZZED
)
secured_api = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config(secured=True)).exclude(
    path_regex=NOT_YET_FUZZED
)


def check(case: Case[Any], app: LongLived) -> None:
    # On the schema as well: checks that replay a case (ignored_auth) send it to the schema's app.
    case.operation.schema.app = app
    case.call_and_validate(app=app)


@open_api.parametrize()
def test_auth_off(case: Case[Any], open_app: LongLived, cases_sent: Counter[str]) -> None:
    cases_sent["auth off"] += 1
    check(case, open_app)


@secured_api.parametrize()
def test_auth_on(case: Case[Any], secured_app: LongLived, cases_sent: Counter[str]) -> None:
    cases_sent["auth on"] += 1
    check(case, secured_app)
