"""The ``llmserve`` command: serve, chat, db."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from llmserve.config import BUNDLED_MODEL_ID, ConfigError, Settings, load_settings

app = typer.Typer(help="llmserve: any LLM as a production Web API.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
err = Console(stderr=True)

# Worker processes (--workers N) rebuild their settings from the same inputs the parent got.
_WORKER_INPUTS_ENV = "_LLMSERVE_WORKER_INPUTS"

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file", envvar="LLMSERVE_CONFIG")
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Where the SQLite file lives")]


def _model_entry(model: str) -> dict[str, str]:
    name = model if model == BUNDLED_MODEL_ID or not Path(model).expanduser().exists() else Path(model).name
    return {"name": name, "provider": "local", "model": model}


def _settings_inputs(
    config: Path | None,
    model: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    data_dir: Path | None,
) -> dict[str, Any]:
    server = {key: value for key, value in (("host", host), ("port", port), ("workers", workers)) if value}
    overrides: dict[str, Any] = {"data_dir": str(data_dir) if data_dir else None}
    if server:
        overrides["server"] = server
    if model:
        overrides["models"] = [_model_entry(model)]
        overrides["default_model"] = overrides["models"][0]["name"]
    return {"config": str(config) if config else None, "overrides": overrides}


def _load(inputs: dict[str, Any]) -> Settings:
    config = Path(inputs["config"]) if inputs["config"] else None
    try:
        return load_settings(config, **inputs["overrides"])
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc


def worker_app() -> Any:
    """uvicorn factory for multi-worker serving."""
    from llmserve.app import create_app

    return create_app(_load(json.loads(os.environ[_WORKER_INPUTS_ENV])))


@app.command()
def serve(
    config: ConfigOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF id or local path to serve instead of the config")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8888)")] = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
) -> None:
    """Start the API server."""
    import uvicorn

    from llmserve.app import create_app
    from llmserve.observability.logging import configure_logging

    inputs = _settings_inputs(config, model, host, port, workers, data_dir)
    settings = _load(inputs)
    from llmserve.services.models import UnsupportedProvider, check_buildable

    try:
        check_buildable(settings)  # fail fast, before binding, on what this build cannot serve
    except UnsupportedProvider as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    configure_logging(settings.server.log_level)
    common: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_config": None,
        "log_level": settings.server.log_level,
        "http": settings.server.http,
        "timeout_graceful_shutdown": 10,
    }
    if settings.server.workers > 1:
        os.environ[_WORKER_INPUTS_ENV] = json.dumps(inputs)
        uvicorn.run("llmserve.cli:worker_app", factory=True, workers=settings.server.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask")],
    url: Annotated[
        str, typer.Option(envvar="LLMSERVE_URL", help="Server base URL")
    ] = "http://127.0.0.1:8888",
    model: Annotated[str | None, typer.Option(help="Model group (default: the server's default)")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Upper bound on reply tokens")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 0.7,
    conversation_id: Annotated[str | None, typer.Option(help="Continue a stored conversation")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="LLMSERVE_API_KEY", help="Bearer key")] = None,
) -> None:
    """Stream an answer from a running server to the terminal."""
    from llmserve.client import ChatClientError, stream_chat

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"messages": messages, "stream": True, "temperature": temperature}
    for key, value in (("model", model), ("max_tokens", max_tokens), ("conversation_id", conversation_id)):
        if value is not None:
            body[key] = value
    try:
        for piece in stream_chat(url, body, api_key):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ChatClientError as exc:
        err.print(f"\n[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    sys.stdout.write("\n")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Apply database migrations (the server also does this at start)."""
    from llmserve.storage.db import Database

    settings = _load(_settings_inputs(config, None, None, None, None, data_dir))
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def upgrade() -> None:
        database = Database(settings.effective_database_url)
        try:
            await database.upgrade()
        finally:
            await database.dispose()

    asyncio.run(upgrade())
    err.print(f"database at {settings.effective_database_url.split('@')[-1]} is up to date")


def main() -> None:
    app()
