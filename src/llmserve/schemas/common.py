"""Wire types shared by the seed-native and OpenAI surfaces."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, Strict

# Numbers and flags of request bodies are taken as JSON sends them, never coerced: "64", true and 1.5
# are not a max_tokens, "yes" and 1 are not a stream flag (pydantic's lax mode takes them all, and a
# client's bug then silently changes what it asked for). Strict floats still take JSON integers.
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]


class SeedTurn(BaseModel):
    # "tool": a stored conversation may hold tool results (sent through /v1/chat/completions).
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=1_000_000)
