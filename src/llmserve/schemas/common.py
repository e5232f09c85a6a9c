"""Wire types shared by the seed-native and OpenAI surfaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SeedTurn(BaseModel):
    # "tool": a stored conversation may hold tool results (sent through /v1/chat/completions).
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=1_000_000)
