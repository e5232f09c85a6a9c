"""Retry policy: which failures another try may fix, how long to back off, what the client finally sees."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from llmserve.errors import (
    InvalidRequest,
    ModelLoadFailed,
    ModelLoading,
    NoDeploymentAvailable,
    Overloaded,
    RateLimited,
    UpstreamError,
)

# Re-exported for the router: the same backoff the jobs and the batch client retry with.
from llmserve.retry_timing import backoff_delay as backoff_delay


def is_retryable(exc: BaseException) -> bool:
    """A transient failure: the same request may succeed on another try (another deployment first).

    Retryable: connection errors, timeouts, 429, 5xx and malformed answers (``UpstreamError.retryable``),
    a full local queue (``Overloaded``), a local model that failed or is still loading. Never a client
    error (``InvalidRequest``, incl. ``ContextLengthExceeded``): every deployment would refuse it too.
    """
    if isinstance(exc, UpstreamError):
        return exc.retryable
    return isinstance(exc, (Overloaded, ModelLoadFailed, ModelLoading, TimeoutError, asyncio.TimeoutError))


def may_fail_over(exc: BaseException) -> bool:
    """Whether another deployment may answer. Beyond the transient failures this includes an upstream
    refusing the gateway's credentials (401/403): that deployment's key, not the client's request."""
    return is_retryable(exc) or isinstance(exc, UpstreamError)


def is_client_error(exc: BaseException) -> bool:
    """The request itself is at fault: says nothing about the deployment's health."""
    return isinstance(exc, InvalidRequest)


def is_rate_limit(exc: BaseException) -> bool:
    return isinstance(exc, RateLimited) or (isinstance(exc, UpstreamError) and exc.upstream_status == 429)


def final_error(errors: Sequence[Exception], group: str) -> Exception:
    """What the client sees once every try and fallback failed.

    Only rate limits (429s, caps) → ``RateLimited`` with the soonest Retry-After, so the client backs
    off; otherwise the last real failure (an upstream error beats "no deployment available", which
    only says breakers are open).
    """
    meaningful = [e for e in errors if not isinstance(e, NoDeploymentAvailable)]
    if not meaningful:
        return errors[-1] if errors else NoDeploymentAvailable(f"No deployment of '{group}' is available")
    failures = [e for e in meaningful if not is_rate_limit(e)]
    if failures:
        return failures[-1]
    if len(meaningful) == 1 and isinstance(meaningful[0], RateLimited):
        return meaningful[0]
    waits = [wait for e in meaningful if (wait := getattr(e, "retry_after", None)) is not None]
    return RateLimited(
        f"Every deployment that could answer '{group}' is rate limited; retry later",
        retry_after=min(waits) if waits else None,
    )
