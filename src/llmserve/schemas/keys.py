"""/admin/keys wire formats, and ``KeyFields``: the one check of a key's fields, shared by the API (its
request bodies), ``llmserve keys`` and KeyService. The secret appears in exactly one place: the answer
to its creation.

The API parses a body as any pydantic model does and answers in pydantic's words. KeyService then
checks every field again with ``checked_key_field``, one at a time in the order given: strictly
(``True`` is no rate limit, text is no date) yet taking what code and the CLI naturally pass (any
iterable of group names, deduplicated; an amount as a number or text; any mapping as an object),
against the running config (``KeyFieldRules``: the model groups that exist, the guardrail settings a
key may override), and in its own words, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from llmserve.config import GuardrailSettings
from llmserve.errors import InvalidRequest

Role = Literal["user", "admin"]
BudgetPeriod = Literal["daily", "monthly", "total"]
GroupName = Annotated[str, Field(min_length=1, max_length=128)]
KEY_NAME_MAX_CHARS = 255  # as wide as the name column in storage
# A field refused by a rule is answered with the rule's own message and param (e.g. guardrails.pii_input).
_RULE_REFUSED = "key_field_refused"


@dataclass(frozen=True, slots=True)
class KeyFieldRules:
    """What checking a key's fields needs from the running config, given by KeyService as the validation
    context. ``check_guardrail_overrides`` is the guardrails' own check (it compiles blocked patterns),
    which raises ValueError for what it refuses."""

    model_groups: frozenset[str]
    guardrails: GuardrailSettings
    check_guardrail_overrides: Callable[[Mapping[str, Any]], object]


def _rules_of(info: ValidationInfo) -> KeyFieldRules | None:
    return info.context if isinstance(info.context, KeyFieldRules) else None


def _refused(param: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(_RULE_REFUSED, "{message}", {"param": param, "message": message})


class KeyFields(BaseModel):
    """A key's settable fields. Their order is the order they are checked and documented in: role and
    budget_period have always come last."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=KEY_NAME_MAX_CHARS, description="Who or what the key is for")
    models: list[GroupName] | None = Field(
        None, min_length=1, description="Model groups the key may call; null: every group"
    )
    rpm: int | None = Field(None, gt=0, description="Requests per minute; null: limits.per_key")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute; null: limits.per_key")
    max_parallel: int | None = Field(None, gt=0, description="Requests in flight; null: limits.per_key")
    max_budget_usd: Decimal | None = Field(None, ge=0, lt=10**9, description="Spend cap per budget_period")
    priority: int | None = Field(None, ge=0, le=100, description="Default priority; lower runs first")
    guardrails: dict[str, Any] | None = Field(None, description="Overrides of the guardrails settings")
    expires_at: datetime | None = Field(None, description="ISO 8601; UTC if no offset. Then 401")
    metadata: dict[str, Any] | None = Field(None, description="Anything; returned as given")
    role: Role = Field("user", description="admin keys may call /admin/*")
    budget_period: BudgetPeriod = "monthly"

    @field_validator("models", mode="before")
    @classmethod
    def _configured_groups(cls, value: Any, info: ValidationInfo) -> Any:
        rules = _rules_of(info)
        if rules is None or isinstance(value, str) or not isinstance(value, Iterable):
            return value  # not a list: refused as one
        names = list(dict.fromkeys(value))  # deduplicated, in order
        if not names:
            raise _refused("models", "models must name at least one group (null: every group)")
        # A typo would silently lock the key out of the model it was made for; refuse it instead.
        unknown = [name for name in names if name not in rules.model_groups]
        if unknown:
            configured = ", ".join(sorted(rules.model_groups))
            raise _refused("models", f"Unknown model group {unknown[0]!r}; configured groups: {configured}")
        return names

    @field_validator("max_budget_usd", mode="before")
    @classmethod
    def _amount_from_code(cls, value: Any, info: ValidationInfo) -> Any:
        if _rules_of(info) is None or value is None or isinstance(value, Decimal):
            return value
        try:
            # Through str: a float's binary expansion (0.1 → 0.1000000000000000055...) is not what was meant.
            return Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise _refused("max_budget_usd", "max_budget_usd must be a number") from None

    @field_validator("guardrails", mode="before")
    @classmethod
    def _overridable_guardrails(cls, value: Any, info: ValidationInfo) -> Any:
        rules = _rules_of(info)
        if rules is None or not isinstance(value, Mapping):
            return value  # not an object: refused as one
        try:
            merged = GuardrailSettings.model_validate({**rules.guardrails.model_dump(), **value})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise _refused(f"guardrails.{where}", f"Invalid guardrails.{where}: {first['msg']}") from None
        try:  # unsafe or invalid blocked patterns are refused now, not at the key's first request
            rules.check_guardrail_overrides(value)
        except ValueError as exc:
            raise _refused("guardrails", f"Invalid guardrails: {exc}") from None
        as_json = merged.model_dump(mode="json")
        return {name: as_json[name] for name in value}

    @field_validator("metadata", mode="before")
    @classmethod
    def _any_mapping(cls, value: Any, info: ValidationInfo) -> Any:
        return dict(value) if _rules_of(info) is not None and isinstance(value, Mapping) else value

    @field_validator("expires_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


# KeyService's words for a field of the wrong type or out of range.
_REFUSALS = {
    "name": f"name must be text of at most {KEY_NAME_MAX_CHARS} characters",
    "models": "models must be a list of model group names",
    "rpm": "rpm must be a positive whole number",
    "tpm": "tpm must be a positive whole number",
    "max_parallel": "max_parallel must be a positive whole number",
    "max_budget_usd": "max_budget_usd must be from 0 to 1e9",
    "priority": "priority must be a whole number from 0 to 100",
    "guardrails": "guardrails must be an object of guardrail settings",
    "expires_at": "expires_at must be a date and time",
    "metadata": "metadata must be an object",
    "role": f"role must be one of: {', '.join(get_args(Role))}",
    "budget_period": f"budget_period must be one of: {', '.join(get_args(BudgetPeriod))}",
}


def checked_key_field(name: str, value: Any, rules: KeyFieldRules) -> Any:
    """``value`` for the key field ``name``, checked and normalised; InvalidRequest names the field."""
    try:
        checked = KeyFields.model_validate({name: value}, strict=True, context=rules)
    except ValidationError as exc:
        message, param = _refusal(name, exc.errors()[0])
        raise InvalidRequest(message, param=param) from exc
    return getattr(checked, name)


def _refusal(name: str, error: ErrorDetails) -> tuple[str, str]:
    if error["type"] == _RULE_REFUSED:
        return error["msg"], str(error.get("ctx", {})["param"])
    if error["type"] == "extra_forbidden":
        return f"Unknown key field: {name}", name
    return _REFUSALS[name], name


class KeyCreateRequest(KeyFields):
    # The body of POST /admin/keys; no docstring, which /openapi.json would show as its description.
    pass


class KeyUpdateRequest(KeyFields):
    """Only the fields sent change; null clears an optional one."""

    # Null passes the wire format for these too, as it always has; KeyService refuses it in its own words.
    role: Role | None = None  # type: ignore[assignment]
    budget_period: BudgetPeriod | None = None  # type: ignore[assignment]


class KeyOut(BaseModel):
    id: str
    name: str | None
    key_prefix: str = Field(description="The first characters of the key, to tell keys apart")
    role: Role
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    max_budget_usd: float | None
    budget_period: BudgetPeriod
    priority: int | None
    guardrails: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    metadata: dict[str, Any]


class KeyCreated(KeyOut):
    key: str = Field(description="The secret itself: shown in this answer only, never again")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]
