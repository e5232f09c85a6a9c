"""Secrets in the config: given literally or as ``env:NAME``, resolved once, at start, in one place."""

from __future__ import annotations

import os

from pydantic import SecretStr

MIN_SECRET_CHARS = 16
ENV_REFERENCE_PREFIX = "env:"


def resolve_secret(
    field: str, value: SecretStr | None, *, min_chars: int = MIN_SECRET_CHARS
) -> SecretStr | None:
    """A secret given literally (at least ``min_chars`` characters) or as ``env:NAME`` (read at start).

    Our own secrets (master key, webhook key) must be long enough to resist guessing; an upstream's
    API key is whatever its provider issued, so model deployments pass ``min_chars=0``.
    """
    if value is None:
        return None
    raw = value.get_secret_value()
    if raw.startswith(ENV_REFERENCE_PREFIX):
        name = raw[len(ENV_REFERENCE_PREFIX) :]
        if not os.environ.get(name):
            raise ValueError(f"{field} names the environment variable {name}, which is not set")
        return SecretStr(os.environ[name])
    if len(raw) < min_chars:
        raise ValueError(f"{field} must be at least {min_chars} characters")
    return value
