"""How a webhook delivery is signed, and how its receiver checks the signature.

A delivery carries ``x-llmserve-signature: sha256=<hex>``, an HMAC-SHA256 with the server's
``jobs.webhook_secret`` over ``"<timestamp>." + body``, the timestamp in ``x-llmserve-timestamp``.
Receivers authenticate it with ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "x-llmserve-signature"
TIMESTAMP_HEADER = "x-llmserve-timestamp"
EVENT_HEADER = "x-llmserve-event"
DELIVERY_HEADER = "x-llmserve-delivery"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>." + body``; the timestamp is signed so replays go stale."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: int | str,
    body: bytes,
    header: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` (``sha256=<hex>``) signs ``body`` at ``timestamp``, within ``tolerance_s``.

    Receivers pass the raw request body (not re-encoded JSON) and the two headers as received.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme != "sha256" or not digest:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), digest.strip().lower())
