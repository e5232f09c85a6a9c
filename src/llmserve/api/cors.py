"""What a browser on an allowed origin may read of an answer besides the CORS-safelisted headers.

Without ``Access-Control-Expose-Headers`` a browser hides every other header from page code: a web
client could not read the request id to report, ``Retry-After`` or the rate-limit headers to back off,
or which deployment answered and what it cost. Named one by one (not ``*``): a wildcard is ignored
for requests with credentials.
"""

from __future__ import annotations

EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    # Rate limits (limits/leases.py): ours, and OpenAI's per-dimension names.
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    *(
        f"x-ratelimit-{kind}-{dimension}"
        for kind in ("limit", "remaining", "reset")
        for dimension in ("requests", "tokens")
    ),
    # Which deployment answered and how (api/serving/replies.py), the conversation, the cost.
    "x-llmserve-deployment",
    "x-llmserve-attempts",
    "x-llmserve-overhead-ms",
    "x-llmserve-cache",
    "x-llmserve-cache-similarity",
    "x-llmserve-model",
    "x-llmserve-message-id",
    "x-llmserve-conversation-id",
    "x-llmserve-history-dropped",
    "x-llmserve-cost-usd",
    "x-llmserve-error-code",
]
