"""What every command shares: the config options, building Settings from them (exit 2 on an invalid
config), the error console, and running work against the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from llmserve.config import BUNDLED_MODEL_ID, DEFAULT_PORT, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from llmserve.storage.db import Database

T = TypeVar("T")

DEFAULT_SERVER_URL = f"http://127.0.0.1:{DEFAULT_PORT}"  # where `llmserve serve` listens by default

err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file", envvar="LLMSERVE_CONFIG")
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Where the SQLite file lives")]


def _model_entry(model: str) -> dict[str, str]:
    name = model if model == BUNDLED_MODEL_ID or not Path(model).expanduser().exists() else Path(model).name
    return {"name": name, "provider": "local", "model": model}


def settings_inputs(
    config: Path | None,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """The command line's share of the settings, as JSON (worker processes rebuild Settings from it)."""
    server = {key: value for key, value in (("host", host), ("port", port), ("workers", workers)) if value}
    overrides: dict[str, Any] = {"data_dir": str(data_dir) if data_dir else None}
    if server:
        overrides["server"] = server
    if model:
        overrides["models"] = [_model_entry(model)]
        overrides["default_model"] = overrides["models"][0]["name"]
    return {"config": str(config) if config else None, "overrides": overrides}


def load_or_exit(inputs: dict[str, Any]) -> Settings:
    """Settings from ``settings_inputs``; an invalid config is printed and exits 2."""
    config = Path(inputs["config"]) if inputs["config"] else None
    try:
        return load_settings(config, **inputs["overrides"])
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc


def run_on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database, migrated first, as the server would see it."""
    from llmserve.storage.db import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        database = Database(settings.effective_database_url)
        try:
            await database.upgrade()
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())
