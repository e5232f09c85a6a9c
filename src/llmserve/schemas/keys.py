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

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from llmserve.config import GuardrailSettings
from llmserve.errors import InvalidRequest
from llmserve.schemas.common import Int

Role = Literal["user", "admin"]
BudgetPeriod = Literal["daily", "monthly", "total"]
GroupName = Annotated[str, Field(min_length=1, max_length=128)]
KEY_NAME_MAX_CHARS = 255  # as wide as the name column in storage
# Every value a field accepts round-trips through both databases and Redis:
LIMIT_MAX = 2**31 - 1  # rpm, tpm, max_parallel: an INTEGER column is 32 bits on PostgreSQL
# Money is a count of 1e-10 USD in a 64-bit INTEGER on SQLite (storage/models.py ExactDecimal): at most
# about 922 million USD; PostgreSQL's numeric(20, 10) holds less than 1e10.
BUDGET_MAX_USD = 900_000_000
# A Python datetime ends at 9999-12-31; a later offset cannot be turned into UTC, and a key's expiry
# plus any interval must stay representable.
EXPIRES_BEFORE = datetime(9999, 1, 1, tzinfo=UTC)
METADATA_MAX_DEPTH = 8  # nested objects and arrays; the listing's JSON encoder stops far deeper
METADATA_MAX_BYTES = 16 * 1024  # as JSON
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
    rpm: Int | None = Field(None, gt=0, le=LIMIT_MAX, description="Requests per minute; null: limits.per_key")
    tpm: Int | None = Field(None, gt=0, le=LIMIT_MAX, description="Tokens per minute; null: limits.per_key")
    max_parallel: Int | None = Field(
        None, gt=0, le=LIMIT_MAX, description="Requests in flight; null: limits.per_key"
    )
    max_budget_usd: Decimal | None = Field(
        None, ge=0, le=BUDGET_MAX_USD, allow_inf_nan=False, description="Spend cap per budget_period"
    )
    priority: Int | None = Field(None, ge=0, le=100, description="Default priority; lower runs first")
    guardrails: dict[str, Any] | None = Field(None, description="Overrides of the guardrails settings")
    expires_at: datetime | None = Field(None, description="ISO 8601; UTC if no offset. Then 401")
    metadata: dict[str, Any] | None = Field(
        None,
        description=f"Any JSON object (at most {METADATA_MAX_DEPTH} levels deep and "
        f"{METADATA_MAX_BYTES} bytes as JSON); returned as given",
    )
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

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if _depth(value) > METADATA_MAX_DEPTH:
            raise _refused("metadata", f"metadata may nest at most {METADATA_MAX_DEPTH} levels deep")
        try:
            size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            raise _refused("metadata", "metadata must be a JSON object") from None
        if size > METADATA_MAX_BYTES:
            raise _refused("metadata", f"metadata may be at most {METADATA_MAX_BYTES} bytes as JSON")
        return value

    @field_validator("expires_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        except OverflowError:
            value = EXPIRES_BEFORE  # an offset that takes it past the end of the calendar
        if value >= EXPIRES_BEFORE:
            raise _refused("expires_at", "expires_at must be before 9999-01-01T00:00:00Z")
        return value


def _depth(value: Any) -> int:
    """Levels of nested objects and arrays in ``value`` (a scalar: 0), counted to one past the limit."""
    depth, level = 0, [value]
    while depth <= METADATA_MAX_DEPTH:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            break
        depth += 1
        level = [
            child for item in containers for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def _children(container: dict[str, Any] | list[Any]) -> Iterable[Any]:
    return container.values() if isinstance(container, dict) else container


# KeyService's words for a field of the wrong type or out of range.
_REFUSALS = {
    "name": f"name must be text of at most {KEY_NAME_MAX_CHARS} characters",
    "models": "models must be a list of model group names",
    "rpm": f"rpm must be a positive whole number, at most {LIMIT_MAX}",
    "tpm": f"tpm must be a positive whole number, at most {LIMIT_MAX}",
    "max_parallel": f"max_parallel must be a positive whole number, at most {LIMIT_MAX}",
    "max_budget_usd": f"max_budget_usd must be from 0 to {BUDGET_MAX_USD}",
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
