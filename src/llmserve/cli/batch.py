"""``llmserve batch run``: a JSONL file of requests through a running llmserve (or any OpenAI-compatible
server), with concurrency, retries, resume, a progress bar and a cost summary.

Exit codes: 0 every line succeeded, 1 some lines failed (or the run was interrupted), 2 bad input or
arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmserve.cli.common import DEFAULT_SERVER_URL

batch_app = typer.Typer(help="Run JSONL files of requests (OpenAI Batch API format).", no_args_is_help=True)


def _default_api_key() -> str | None:
    return os.environ.get("LLMSERVE_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


@batch_app.command("run")
def run(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT.jsonl", help="One request per line")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where answers go (JSONL)")],
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once")] = 8,
    server: Annotated[str, typer.Option(envvar="LLMSERVE_URL", help="Server base URL")] = DEFAULT_SERVER_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Bearer key (default: $LLMSERVE_API_KEY, then $OPENAI_API_KEY)", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model for lines that name none (default: the server's)")
    ] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries per line on 429/5xx/timeouts")] = 5,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for one answer")] = 600.0,
    via_batch_api: Annotated[
        bool, typer.Option("--via-batch-api", help="Submit to the server's /v1/batches instead")
    ] = False,
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between status polls (--via-batch-api)")
    ] = 2.0,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip lines already answered in OUTPUT")
    ] = True,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Also write the summary here as JSON")
    ] = None,
) -> None:
    """Send every line of INPUT.jsonl and write one answer line per custom_id to OUTPUT."""
    # Imported here so that every other llmserve command starts without loading aiohttp.
    from llmserve.batch_client.http import ClientConfig
    from llmserve.batch_client.run import InputError, RunOptions, run_batch

    console = Console(stderr=True)
    config = ClientConfig(
        server=server,
        api_key=api_key or _default_api_key(),
        concurrency=concurrency,
        retries=retries,
        timeout_s=timeout,
    )
    options = RunOptions(input_path, output, config, model, resume, via_batch_api, poll_interval)
    try:
        summary = asyncio.run(run_batch(options, console))
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    console.print(summary.render(), highlight=False, soft_wrap=True)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(0 if summary.all_succeeded else 1)
