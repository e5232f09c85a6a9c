"""Admission: what a request must pass before it reaches a provider, and what it gives back after.

Order: model permission → input guardrails → rate limits (RPM, TPM reserved from an estimate,
parallel) → budget (the estimated cost reserved) → the group's admission queue. After the call the
TPM and budget reservations are settled with the real counts, and every slot is released — also
when the call fails or the client leaves. Each step is a no-op when its feature is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from llmserve.config import LimitRule, Settings
from llmserve.errors import GuardrailViolation, InvalidRequest, RateLimited
from llmserve.principal import Principal
from llmserve.services.keys import ensure_model_allowed
from llmserve.services.models import ModelRegistry
from llmserve.services.pricing import cost_usd
from llmserve.types import ChatInput, GenerationInput, TextInput, Usage

if TYPE_CHECKING:
    from llmserve.guardrails import Guardrails, OutputMasker
    from llmserve.limits.budget import BudgetGuard, BudgetReservation
    from llmserve.limits.leases import Lease
    from llmserve.limits.queue import AdmissionQueue, Ticket
    from llmserve.limits.ratelimit import RateLimiter
    from llmserve.observability.metrics import Metrics


@dataclass
class Pass:
    """A request's admission: slots and reservations to settle and release exactly once."""

    request: GenerationInput  # after input guardrails (PII masked)
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* for the response
    lease: Lease | None = None
    reservation: BudgetReservation | None = None
    ticket: Ticket | None = None
    guardrails: Guardrails | None = None
    _done: bool = False

    def output_masker(self) -> OutputMasker | None:
        if self.guardrails is None or not self.guardrails.masks_output:
            return None
        return self.guardrails.output_masker()

    def mask(self, text: str) -> str:
        return text if self.guardrails is None else self.guardrails.mask_output(text)

    async def settle(self, usage: Usage | None, cost: Decimal) -> None:
        """The real counts (None: the call failed); then every slot is released."""
        if self._done:
            return
        self._done = True
        try:
            if self.lease is not None:  # settle and release in one round trip
                tokens = None if usage is None else usage.prompt_tokens + usage.completion_tokens
                await self.lease.finish(tokens)
            if self.reservation is not None:
                if usage is not None:
                    await self.reservation.settle(cost)
                else:
                    await self.reservation.release()
        finally:
            if self.ticket is not None:
                self.ticket.release()


class Admission:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        *,
        guardrails: Guardrails | None = None,
        limiter: RateLimiter | None = None,
        budgets: BudgetGuard | None = None,
        queue: AdmissionQueue | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.guardrails = guardrails
        self.limiter = limiter
        self.budgets = budgets
        self.queue = queue
        self.metrics = metrics
        self._local_groups = _local_group_widths(settings)
        if queue is not None:
            for group, width in self._local_groups.items():
                queue.set_default_concurrency(group, width)

    async def enter(
        self, principal: Principal, tenant: str, group: str, request: GenerationInput, priority: int | None
    ) -> Pass:
        """``tenant`` scopes the per-key limits: the key id, or with auth off a digest of the token."""
        ensure_model_allowed(principal, group)
        self._check_token_cap(group, request)
        admitted = Pass(request)
        self._check_input(principal, admitted)
        try:
            estimate = await self._acquire_limits(principal, tenant, group, admitted)
            await self._reserve_budget(principal, group, admitted, estimate)
            if self.queue is not None:
                admitted.ticket = await self.queue.acquire(
                    group, priority if priority is not None else principal.priority, tenant
                )
        except BaseException:
            await admitted.settle(None, Decimal(0))
            raise
        return admitted

    def _check_token_cap(self, group: str, request: GenerationInput) -> None:
        """``n x max_tokens`` within engine.max_total_tokens_per_request for a group of local models:
        one request must not hold an engine for minutes (n=16, max_tokens=400 held it 275 s)."""
        if group not in self._local_groups:
            return
        cap = self.settings.engine.max_total_tokens_per_request
        options = request.options
        max_tokens = options.max_tokens
        if max_tokens is None:
            max_tokens = self.registry.router.deployments(group)[0].config.default_max_tokens
        if max(1, options.n) * max_tokens > cap:
            raise InvalidRequest(
                f"n x max_tokens is {max(1, options.n)} x {max_tokens} = {max(1, options.n) * max_tokens}, "
                f"more than the {cap} tokens one request may ask of model '{group}' "
                "(engine.max_total_tokens_per_request): lower n or max_tokens",
                param="max_tokens",
                code="too_many_tokens_requested",
            )

    def _check_input(self, principal: Principal, admitted: Pass) -> None:
        """Input guardrails (with the key's overrides); they may rewrite the request (PII masked)."""
        if self.guardrails is None:
            return
        guard = self.guardrails.for_principal(principal.guardrails)
        admitted.guardrails = guard
        try:
            admitted.request = _checked(guard, admitted.request)
        except GuardrailViolation as exc:
            if self.metrics is not None:
                self.metrics.guardrail_block(exc.rule)
            raise

    async def _acquire_limits(self, principal: Principal, tenant: str, group: str, admitted: Pass) -> int:
        """RPM, TPM and parallel slots of the key and the model; the token estimate if one was needed."""
        if self.limiter is None:
            return 0
        from llmserve.limits.leases import LimitSubject

        # A key's own limits (merged over limits.per_key); without auth, per_key per token.
        key_rule = principal.limits if principal.key_id else self.settings.limits.per_key
        subjects = [LimitSubject(f"key:{tenant}", key_rule)]
        model_rule = self.settings.limits.per_model.get(group)
        if model_rule is not None:
            subjects.append(LimitSubject(f"model:{group}", model_rule))
        if not any(_limited(s.rule) for s in subjects):
            return 0
        estimate = 0  # counted only when a limit or a budget needs it
        if any(s.rule.tpm is not None for s in subjects) or self._budgeted(principal):
            estimate = await self._estimate_tokens(group, admitted.request)
        try:
            admitted.lease = await self.limiter.acquire(subjects, estimate)
        except RateLimited:
            if self.metrics is not None:
                self.metrics.rate_limited(group)
            raise
        admitted.headers.update(admitted.lease.headers)
        return estimate

    async def _reserve_budget(self, principal: Principal, group: str, admitted: Pass, estimate: int) -> None:
        """The estimated cost, reserved against the key's budget (settled with the real cost later)."""
        if self.budgets is None or not self._budgeted(principal):
            return
        estimate = estimate or await self._estimate_tokens(group, admitted.request)
        admitted.reservation = await self.budgets.reserve(principal, self._estimated_cost(group, estimate))

    def _budgeted(self, principal: Principal) -> bool:
        return self.budgets is not None and principal.max_budget_usd is not None

    async def close(self) -> None:
        for part in (self.limiter, self.budgets):
            close = getattr(part, "close", None)
            if close is not None:
                await close()

    async def _estimate_tokens(self, group: str, request: GenerationInput) -> int:
        """Prompt tokens (the first deployment's count) plus the completion budget asked for."""
        deployments = self.registry.router.deployments(group)
        first = deployments[0]
        prompt = await first.provider.count_tokens(request)
        completion = request.options.max_tokens or first.config.default_max_tokens
        return prompt + completion * max(1, request.options.n)

    def _estimated_cost(self, group: str, tokens: int) -> Decimal:
        # An upper bound priced at the dearer of the two rates, so a reservation never under-counts.
        deployments = self.registry.router.deployments(group)
        return max(
            (max(cost_usd(d.config, tokens, 0), cost_usd(d.config, 0, tokens)) for d in deployments),
            default=Decimal(0),
        )


def _local_group_widths(settings: Settings) -> dict[str, int]:
    """Chat groups served by local deployments only, with what their engines decode at once."""
    widths: dict[str, int] = {}
    remote: set[str] = set()
    for entry in settings.models:
        if entry.task == "embeddings":
            continue
        if entry.provider != "local":
            remote.add(entry.name)
        else:
            widths[entry.name] = widths.get(entry.name, 0) + settings.engine.max_batch_size
    return {group: width for group, width in widths.items() if group not in remote}


def _limited(rule: LimitRule) -> bool:
    return any(value is not None for value in (rule.rpm, rule.tpm, rule.max_parallel))


def _checked(guard: Guardrails, request: GenerationInput) -> GenerationInput:
    if isinstance(request, ChatInput):
        verdict = guard.check_input(request.messages)
        if verdict.messages is request.messages:  # nothing masked: the same tuple came back
            return request
        return ChatInput(tuple(verdict.messages), request.options)
    assert isinstance(request, TextInput)
    return TextInput(guard.check_text(request.prompt), request.options)
