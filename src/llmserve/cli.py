"""The ``llmserve`` command: serve, chat, keys, db."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from llmserve.cli_batch import batch_app
from llmserve.config import BUNDLED_MODEL_ID, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from llmserve.services.keys import ApiKeyInfo, KeyService

WORKER_HEALTHCHECK_TIMEOUT_S = 60

app = typer.Typer(help="llmserve: any LLM as a production Web API.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(
    help="API keys, straight in the database (the server need not run).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(batch_app, name="batch")
err = Console(stderr=True)
logger = logging.getLogger(__name__)
T = TypeVar("T")

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
    from llmserve.observability.logging import configure_logging
    from llmserve.serving import tune_gc_for_serving

    settings = _load(json.loads(os.environ[_WORKER_INPUTS_ENV]))
    # Workers are spawned, not forked: they set up logging themselves.
    configure_logging(settings.server.log_level, settings.observability.log_format)
    application = create_app(settings)
    tune_gc_for_serving()
    return application


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
    from llmserve.serving import tune_gc_for_serving, uvicorn_http_protocol

    inputs = _settings_inputs(config, model, host, port, workers, data_dir)
    settings = _load(inputs)
    _refuse_open_remote_bind(settings)
    from llmserve.services.models import UnsupportedProvider, check_buildable

    try:
        check_buildable(settings)  # fail fast, before binding, on what this build cannot serve
    except UnsupportedProvider as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    configure_logging(settings.server.log_level, settings.observability.log_format)
    _log_auth(settings)
    common: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_config": None,
        "log_level": settings.server.log_level,
        "http": uvicorn_http_protocol(settings.server.http),
        "timeout_graceful_shutdown": 10,
    }
    if settings.server.workers > 1:
        os.environ[_WORKER_INPUTS_ENV] = json.dumps(inputs)
        with _shared_metrics_dir(settings.observability.metrics):
            uvicorn.run(
                "llmserve.cli:worker_app",
                factory=True,
                workers=settings.server.workers,
                # uvicorn kills a worker that misses a 5 s health ping; a worker importing torch and
                # loading a model on a busy 2-core machine can miss it and get its connections reset.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
                **common,
            )
    else:
        application = create_app(settings)
        tune_gc_for_serving()
        uvicorn.run(application, **common)


@contextlib.contextmanager
def _shared_metrics_dir(enabled: bool) -> Iterator[None]:
    """Workers record their metrics in one fresh directory, so /metrics on any of them sums them all
    (prometheus-client's multiprocess mode). Set before the workers start: prometheus_client picks its
    value store when first imported. A PROMETHEUS_MULTIPROC_DIR already set says where the directory
    goes (a tmpfs, say); it is always a new one, so files of an earlier run never count."""
    if not enabled:
        yield
        return
    from llmserve.observability.metrics import MULTIPROC_DIR_ENV

    parent = os.environ.get(MULTIPROC_DIR_ENV) or None
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix="llmserve-metrics-", dir=parent)
    os.environ[MULTIPROC_DIR_ENV] = path
    try:
        yield
    finally:
        if parent is None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
        else:
            os.environ[MULTIPROC_DIR_ENV] = parent
        shutil.rmtree(path, ignore_errors=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve beyond this machine
        return False


def _refuse_open_remote_bind(settings: Settings) -> None:
    """Without a master key every caller may use every route: only this machine may connect then."""
    host = settings.server.host
    if settings.master_key is not None or _is_loopback(host) or settings.auth.allow_remote_without_key:
        return
    err.print(
        f"[red]error:[/red] refusing to listen on {host} without a master key: anyone who can reach it "
        "could call every route, /admin included.\n"
        "Set master_key (LLMSERVE_MASTER_KEY) to turn authentication on, or set "
        "auth.allow_remote_without_key: true (LLMSERVE_AUTH__ALLOW_REMOTE_WITHOUT_KEY=true) "
        "to serve without keys anyway.",
        highlight=False,
    )
    raise typer.Exit(2)


def _log_auth(settings: Settings) -> None:
    if settings.master_key is not None:
        logger.info("authentication is on: every API route needs a key (Authorization: Bearer or x-api-key)")
    elif _is_loopback(settings.server.host):
        logger.info("authentication is off (no master_key): only this machine can connect")
    else:
        logger.warning(
            "authentication is off (no master_key) and auth.allow_remote_without_key is set: "
            "anyone who can reach %s may call every route, /admin included",
            settings.server.host,
        )


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


def _run_with_keys(
    config: Path | None, data_dir: Path | None, work: Callable[[KeyService], Awaitable[T]]
) -> T:
    """Run ``work`` against the configured database (migrated first), as the server would see it."""
    from llmserve.errors import LLMServeError
    from llmserve.services.keys import KeyService
    from llmserve.storage.db import Database

    settings = _load(_settings_inputs(config, None, None, None, None, data_dir))
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        database = Database(settings.effective_database_url)
        try:
            await database.upgrade()
            return await work(KeyService(database, settings))
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except LLMServeError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1 if exc.status_code == 404 else 2) from exc


def _key_json(key: ApiKeyInfo) -> dict[str, Any]:
    """The key as GET /admin/keys shows it."""
    from llmserve.api.routes.keys import key_fields
    from llmserve.schemas.keys import KeyOut

    return KeyOut(**key_fields(key)).model_dump(mode="json")


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
    from rich.table import Table

    found = _run_with_keys(config, data_dir, lambda keys: keys.list())
    if as_json:
        sys.stdout.write(json.dumps({"data": [_key_json(key) for key in found]}, indent=2) + "\n")
        return
    table = Table()
    # The id and prefix are what people copy (to revoke, to recognise a key): never cut them short.
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("prefix", no_wrap=True, min_width=12)
    for column in ("name", "role", "models", "rpm", "tpm", "budget", "expires", "revoked"):
        table.add_column(column)
    for key in found:
        budget = ""
        if key.max_budget_usd is not None:
            budget = f"{key.max_budget_usd.normalize():f} {key.budget_period}"
        table.add_row(
            key.id,
            key.key_prefix,
            key.name or "",
            key.role,
            ",".join(key.models) if key.models is not None else "*",
            str(key.rpm or ""),
            str(key.tpm or ""),
            budget,
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    # Piped output has no terminal width to fit; rich would assume 80 columns and squash the table.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


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


from llmserve.cli_worker import worker  # noqa: E402  (it reuses the helpers above)

app.command()(worker)


def main() -> None:
    app()
