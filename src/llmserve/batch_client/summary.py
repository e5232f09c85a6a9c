"""What a run did, in numbers a user checks: counts, retries, speed, tokens and money.

Cost comes from the server when it says (``x-llmserve-cost-usd``), else from the built-in list prices
(``llmserve.services.pricing.BUILTIN_PRICES``) matched on the answer's ``model``. llmserve's bundled
model costs nothing; any other model without a known price is counted as "unknown price", never as 0,
so a total is not quietly too low.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from llmserve.config import BUNDLED_MODEL_ID
from llmserve.services.pricing import BUILTIN_PRICES

COST_HEADER = "x-llmserve-cost-usd"
FAILED_IDS_SHOWN = 10
_THOUSAND = Decimal(1000)
_PREFIXES = sorted(BUILTIN_PRICES, key=len, reverse=True)  # "gpt-4o-mini" before "gpt-4o"


def price_cost(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """USD for these tokens from the built-in table; None when the model's price is unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    if name == BUNDLED_MODEL_ID:
        return Decimal(0)
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            price_in, price_out = BUILTIN_PRICES[prefix]
            return (Decimal(price_in) * prompt_tokens + Decimal(price_out) * completion_tokens) / _THOUSAND
    return None


def _tokens(body: Any) -> tuple[int, int, int]:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0, 0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return prompt, completion, int(usage.get("total_tokens") or prompt + completion)


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unknown_price_lines: int = 0
    unknown_models: set[str] = field(default_factory=set)
    failed_ids: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None  # why the run stopped early (the batch API refused), if it did
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def record(self, line: dict[str, Any], ok: bool, cost_header: str | None = None) -> None:
        if not ok:
            self.failed += 1
            self.failed_ids.append(str(line.get("custom_id")))
            return
        self.succeeded += 1
        body = (line.get("response") or {}).get("body")
        prompt, completion, total = _tokens(body)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total
        self._add_cost(body, prompt, completion, cost_header)

    def _add_cost(self, body: Any, prompt: int, completion: int, cost_header: str | None) -> None:
        if cost_header is not None:
            try:
                self.cost_usd += Decimal(cost_header)
                return
            except InvalidOperation:
                pass  # a malformed header is no worse than no header: fall back to the table
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        cost = price_cost(model, prompt, completion) if model else None
        if cost is None:
            self.unknown_price_lines += 1
            self.unknown_models.add(model or "(no model in answer)")
        else:
            self.cost_usd += cost

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def wall_time_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def not_run(self) -> int:
        return max(0, self.total - self.skipped - self.succeeded - self.failed)

    @property
    def all_succeeded(self) -> bool:
        return self.failed == 0 and self.not_run == 0 and not self.interrupted and self.error is None

    def cost_text(self) -> str:
        if self.succeeded and self.unknown_price_lines == self.succeeded:
            return "n/a (unknown price)"
        text = f"${self.cost_usd:.6f}"
        if self.unknown_price_lines:
            models = ", ".join(sorted(self.unknown_models))
            text += f" + {self.unknown_price_lines} line(s) of unknown price ({models})"
        return text

    def as_dict(self) -> dict[str, Any]:
        done = self.succeeded + self.failed
        wall = self.wall_time_s
        known_cost = self.unknown_price_lines < self.succeeded or not self.succeeded
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_run": self.not_run,
            "retries": self.retries,
            "wall_time_s": round(wall, 3),
            "lines_per_s": round(done / wall, 3) if wall > 0 else 0.0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": str(self.cost_usd) if known_cost else None,
            "unknown_price_lines": self.unknown_price_lines,
            "failed_custom_ids": self.failed_ids[:FAILED_IDS_SHOWN],
            "interrupted": self.interrupted,
            "error": self.error,
        }

    def render(self) -> str:
        data = self.as_dict()
        counts = (
            f"lines: {self.total} total, {self.succeeded} succeeded, {self.failed} failed, "
            f"{self.skipped} skipped (already done)"
        )
        if self.not_run:
            counts += f", {self.not_run} not run"
        lines = [
            counts,
            f"retries: {self.retries}; wall time {data['wall_time_s']:.2f}s; "
            f"{data['lines_per_s']:.2f} lines/s",
            f"tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion "
            f"= {self.total_tokens} total; cost: {self.cost_text()}",
        ]
        if self.failed_ids:
            more = len(self.failed_ids) - FAILED_IDS_SHOWN
            shown = ", ".join(self.failed_ids[:FAILED_IDS_SHOWN]) + (f" (+{more} more)" if more > 0 else "")
            lines.append(f"failed custom_ids: {shown}")
        if self.error:
            lines.append(f"error: {self.error}")
        if self.interrupted:
            lines.append("interrupted: run the same command again to finish the remaining lines")
        return "\n".join(lines)
