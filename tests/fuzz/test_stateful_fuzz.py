"""Sequences of linked calls: what one operation creates, the next reads, changes or deletes.

The links are the ones schemathesis infers from the document (a response's ``id`` that a path
parameter names): POST /admin/keys → GET, PATCH, DELETE /admin/keys/{key_id}; POST /v1/files → GET
/v1/files/{file_id}, its content, DELETE; POST /v1/batches → GET and cancel; the Responses API's
stored objects. Every step is held to the same checks as the single-call tier, so a key or file that
was created and then answers 404, 500 or a body outside its schema fails here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from schemathesis import Case, Response

from tests.fuzz.conftest import LongLived
from tests.fuzz.test_openapi_fuzz import secured_api

SCENARIOS = 40
STEPS = 8


def test_linked_calls_auth_on(secured_app: LongLived, cases_sent: Counter[str]) -> None:
    secured_api.app = secured_app  # where checks that replay a step send it
    machine = secured_api.as_state_machine()

    class Machine(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"app": secured_app}

        def after_call(self, response: Response, case: Case[Any]) -> None:
            cases_sent["stateful"] += 1

    Machine.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            derandomize=True,  # the same sequences every run
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
