"""Wire types shared by the seed-native and OpenAI surfaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SeedTurn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)
