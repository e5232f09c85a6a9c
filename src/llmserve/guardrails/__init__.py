"""Input and output guardrails: size limits, blocked patterns, prompt-injection heuristic, PII masking.

Wiring (one ``Guardrails`` per app, built from ``settings.guardrails``; per request
``guardrails.for_principal(principal.guardrails)``): ``check_input`` / ``check_text`` before routing,
``mask_output`` on a whole answer, one ``output_masker()`` per streamed choice (``feed`` each delta's
text, ``flush`` on the choice's last delta).
"""

from llmserve.guardrails.filters import (
    OVERRIDABLE,
    Guardrails,
    InputVerdict,
    TextVerdict,
    validate_overrides,
)
from llmserve.guardrails.injection import injection_score
from llmserve.guardrails.patterns import compile_blocked_patterns
from llmserve.guardrails.pii import ALL_ENTITIES, OutputMasker, find_pii, mask_pii

__all__ = [
    "ALL_ENTITIES",
    "OVERRIDABLE",
    "Guardrails",
    "InputVerdict",
    "OutputMasker",
    "TextVerdict",
    "compile_blocked_patterns",
    "find_pii",
    "injection_score",
    "mask_pii",
    "validate_overrides",
]
