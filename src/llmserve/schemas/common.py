"""Wire types shared by the seed-native and OpenAI surfaces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError


def _json_number(value: Any) -> Any:
    # pydantic's lax mode reads "64" and true as numbers: a client's bug would then silently change
    # what it asked for. JSON's own numbers pass on, as JSON Schema reads them: 1 is a number, 2.0 an
    # integer (pydantic still refuses 2.5 for an integer).
    if isinstance(value, str | bool):
        raise PydanticCustomError(
            "number_type", "Input should be a JSON number, not {kind}", {"kind": _kind(value)}
        )
    return value


def _kind(value: str | bool) -> str:
    return "a boolean" if isinstance(value, bool) else "a string"


# Numbers and flags of request bodies, taken as JSON sends them.
Int = Annotated[int, BeforeValidator(_json_number)]
Number = Annotated[float, BeforeValidator(_json_number)]
Flag = Annotated[bool, Strict()]  # true or false: not "true", 1 or "yes"


# What services/conversations.py accepts (it checks, and words the refusal); in the document so that
# clients know it before a 400.
ConversationId = Annotated[str, Field(max_length=64, json_schema_extra={"pattern": "^[A-Za-z0-9_-]{1,64}$"})]


class SeedTurn(BaseModel):
    # "tool": a stored conversation may hold tool results (sent through /v1/chat/completions).
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=1_000_000)
