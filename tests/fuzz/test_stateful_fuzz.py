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

import schemathesis
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case, Response

from tests.fuzz.conftest import LongLived
from tests.fuzz.test_openapi_fuzz import DOCUMENT, SEED, fuzz_config

# Its own schema, without the single-call tier's hook (which rewrites a case in place: a state
# machine replays its steps). Positive data only: the single-call tier sends the negative cases.
stateful_api = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config(secured=True, mode="positive"))
SUITES = 4
SCENARIOS = 20  # per suite
STEPS = 8  # at most, per scenario
MIN_STEPS = 200  # all suites together: fewer means the runs stopped early, not that they passed
SETTINGS = settings(
    max_examples=SCENARIOS,
    stateful_step_count=STEPS,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_linked_calls_auth_on(secured_app: LongLived, cases_sent: Counter[str]) -> None:
    stateful_api.app = secured_app  # where checks that replay a step send it
    steps: list[str] = []
    failures: list[Exception] = []

    class Machine(stateful_api.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"app": secured_app}

        def after_call(self, response: Response, case: Case[Any]) -> None:
            steps.append(case.operation.label)

        def validate_response(self, response: Response, case: Case[Any], *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as exc:  # kept: hypothesis may end the suite as flaky while replaying it
                failures.append(exc)
                raise

    for suite in range(SUITES):
        try:
            seed(SEED + suite)(Machine).run(settings=SETTINGS)  # seeded: the same suites every run
        except FlakyStrategyDefinition:
            # A step's data depends on the ids the server handed out (a created key's), so hypothesis
            # can find a replayed prefix drawing differently and give the suite up; schemathesis's own
            # runner starts the next suite then, as here. A failed check is not this error.
            continue
    cases_sent["stateful"] += len(steps)
    assert not failures, failures[0]
    assert len(steps) >= MIN_STEPS, f"only {len(steps)} steps ran"
