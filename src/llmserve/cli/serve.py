"""``llmserve serve``: the API server, in this process or in ``--workers`` processes."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from llmserve.cli.common import ConfigOption, DataDirOption, err, load_or_exit, settings_inputs
from llmserve.config import Settings

WORKER_HEALTHCHECK_TIMEOUT_S = 60

# Log lines have always named the command's logger "llmserve.cli", whichever module logs.
logger = logging.getLogger(__package__)

# Worker processes (--workers N) rebuild their settings from the same inputs the parent got.
_WORKER_INPUTS_ENV = "_LLMSERVE_WORKER_INPUTS"


def worker_app() -> Any:
    """uvicorn factory for multi-worker serving."""
    from llmserve.app import create_app
    from llmserve.observability.logging import configure_logging
    from llmserve.server.process import tune_gc_for_serving

    settings = load_or_exit(json.loads(os.environ[_WORKER_INPUTS_ENV]))
    # Workers are spawned, not forked: they set up logging themselves.
    configure_logging(settings.server.log_level, settings.observability.log_format)
    application = create_app(settings)
    tune_gc_for_serving()
    return application


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
    from llmserve.server.process import tune_gc_for_serving, uvicorn_server_options

    inputs = settings_inputs(config, model, host, port, workers, data_dir)
    settings = load_or_exit(inputs)
    _refuse_open_remote_bind(settings)
    _refuse_unbuildable(settings)
    configure_logging(settings.server.log_level, settings.observability.log_format)
    _log_auth(settings)
    common: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_config": None,
        "log_level": settings.server.log_level,
        **uvicorn_server_options(settings.server),  # the parser, its head size limit
        "timeout_graceful_shutdown": 10,
    }
    if settings.server.workers > 1:
        os.environ[_WORKER_INPUTS_ENV] = json.dumps(inputs)
        with _shared_metrics_dir(settings.observability.metrics):
            uvicorn.run(
                "llmserve.cli.serve:worker_app",
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


def _refuse_unbuildable(settings: Settings) -> None:
    """Fail fast, before binding, on what this build cannot serve."""
    from llmserve.services.models import UnsupportedProvider, check_buildable

    try:
        check_buildable(settings)
    except UnsupportedProvider as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc


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
