"""``llmserve keys``: create, list and revoke API keys straight in the database (the server need not
run). Fields are checked by KeyService through the same schema as ``/admin/keys``."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from llmserve.cli.common import (
    ConfigOption,
    DataDirOption,
    err,
    load_or_exit,
    run_on_database,
    settings_inputs,
)

if TYPE_CHECKING:
    from llmserve.services.keys import ApiKeyInfo, KeyService

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys, straight in the database (the server need not run).", no_args_is_help=True
)


def _run_with_keys(
    config: Path | None, data_dir: Path | None, work: Callable[[KeyService], Awaitable[T]]
) -> T:
    """Run ``work`` against the configured database (migrated first), as the server would see it."""
    from llmserve.errors import LLMServeError
    from llmserve.services.keys import KeyService

    settings = load_or_exit(settings_inputs(config, data_dir=data_dir))
    try:
        return run_on_database(settings, lambda database: work(KeyService(database, settings)))
    except LLMServeError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1 if exc.status_code == 404 else 2) from exc


def _key_json(key: ApiKeyInfo) -> dict[str, Any]:
    """The key as GET /admin/keys shows it."""
    from llmserve.schemas.keys import KeyOut

    return KeyOut.model_validate(asdict(key)).model_dump(mode="json")


@keys_app.command("create")
def keys_create(
    name: Annotated[str | None, typer.Option(help="Who or what the key is for")] = None,
    role: Annotated[str, typer.Option(help="user, or admin (may call /admin/*)")] = "user",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model groups the key may call (default: all)")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    max_parallel: Annotated[int | None, typer.Option(help="Requests in flight at once")] = None,
    max_budget_usd: Annotated[str | None, typer.Option(help="Spend cap per budget period, USD")] = None,
    budget_period: Annotated[str, typer.Option(help="daily, monthly or total")] = "monthly",
    priority: Annotated[int | None, typer.Option(help="Default priority, 0-100; lower runs first")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a key and print it: the only time it is shown. Details go to stderr."""
    groups = None if models is None else [part.strip() for part in models.split(",") if part.strip()]
    created = _run_with_keys(
        config,
        data_dir,
        lambda keys: keys.create(
            name=name,
            role=role,
            models=groups,
            rpm=rpm,
            tpm=tpm,
            max_parallel=max_parallel,
            max_budget_usd=max_budget_usd,
            budget_period=budget_period,
            priority=priority,
        ),
    )
    sys.stdout.write(created.secret + "\n")
    label = ", ".join(part for part in (created.info.role, created.info.name) if part)
    err.print(f"created key {created.info.id} ({label})", highlight=False, soft_wrap=True)
    err.print("store the key now: it is not shown again", highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead of a table")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Every key, revoked ones included. Never a secret."""
    found = _run_with_keys(config, data_dir, lambda keys: keys.list())
    if as_json:
        sys.stdout.write(json.dumps({"data": [_key_json(key) for key in found]}, indent=2) + "\n")
        return
    # Piped output has no terminal width to fit; rich would assume 80 columns and squash the table.
    Console(width=None if sys.stdout.isatty() else 200).print(_keys_table(found))


def _keys_table(found: list[ApiKeyInfo]) -> Table:
    table = Table()
    # The id and prefix are what people copy (to revoke, to recognise a key): never cut them short.
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("prefix", no_wrap=True, min_width=12)
    for column in ("name", "role", "models", "rpm", "tpm", "budget", "expires", "revoked"):
        table.add_column(column)
    for key in found:
        table.add_row(
            key.id,
            key.key_prefix,
            key.name or "",
            key.role,
            ",".join(key.models) if key.models is not None else "*",
            str(key.rpm or ""),
            str(key.tpm or ""),
            _budget_text(key),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    return table


def _budget_text(key: ApiKeyInfo) -> str:
    if key.max_budget_usd is None:
        return ""
    return f"{key.max_budget_usd.normalize():f} {key.budget_period}"


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from 'llmserve keys list')")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key for good: it gets 401 at once (other running replicas: within 5 seconds)."""
    revoked = _run_with_keys(config, data_dir, lambda keys: keys.revoke(key_id))
    assert revoked.revoked_at is not None
    err.print(f"revoked key {revoked.id} at {revoked.revoked_at.isoformat(timespec='seconds')}")
