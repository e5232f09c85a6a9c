"""The base of every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # Typos in a config file must be loud: an unknown key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")
