"""``llmserve db``: database maintenance."""

from __future__ import annotations

import typer

from llmserve.cli.common import (
    ConfigOption,
    DataDirOption,
    err,
    load_or_exit,
    run_on_database,
    settings_inputs,
)

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


async def _nothing_more(database: object) -> None:
    """Migrating is all ``db upgrade`` does; run_on_database migrates before any work."""


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Apply database migrations (the server also does this at start)."""
    settings = load_or_exit(settings_inputs(config, data_dir=data_dir))
    run_on_database(settings, _nothing_more)
    err.print(f"database at {settings.effective_database_url.split('@')[-1]} is up to date")
