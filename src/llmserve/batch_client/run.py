"""One ``llmserve batch run``: read the input, skip what an earlier run finished, run the rest, tidy up.

The modes (direct, ``--via-batch-api``) only send and receive; everything around them — resume, the
invalid lines, the progress bar, the final rewrite of the output file — happens here, the same for both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from llmserve.batch_client.direct import run_direct
from llmserve.batch_client.http import ClientConfig
from llmserve.batch_client.lines import ParsedInput, invalid_line_output, parse_lines
from llmserve.batch_client.output import OutputWriter, PreviousOutput, compact, read_previous
from llmserve.batch_client.progress import BatchProgress
from llmserve.batch_client.summary import Summary
from llmserve.batch_client.via_api import BatchApiError, run_via_api


class InputError(Exception):
    """The input cannot be run at all (missing file, duplicate custom_ids): exit code 2."""


@dataclass(frozen=True)
class RunOptions:
    input_path: Path
    output_path: Path
    config: ClientConfig
    model: str | None = None
    resume: bool = True
    via_batch_api: bool = False
    poll_interval_s: float = 2.0


def load_input(path: Path, model: str | None) -> ParsedInput:
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            parsed = parse_lines(file, model)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if parsed.duplicates:
        shown = ", ".join(sorted(set(parsed.duplicates))[:10])
        raise InputError(f"custom_id must be unique; repeated in {path}: {shown}")
    return parsed


async def run_batch(options: RunOptions, console: Console) -> Summary:
    parsed = load_input(options.input_path, options.model)
    if options.input_path.resolve() == options.output_path.resolve():
        raise InputError("the output file must not be the input file")
    previous = read_previous(options.output_path) if options.resume else PreviousOutput()
    todo = [request for request in parsed.requests if request.custom_id not in previous.succeeded]
    invalid = [item for item in parsed.invalid if item.custom_id not in previous.succeeded]
    summary = Summary(total=parsed.total, skipped=parsed.total - len(todo) - len(invalid))
    if summary.skipped:
        console.print(f"resuming: {summary.skipped} line(s) already answered in {options.output_path}")
    fresh = not options.resume
    with (
        OutputWriter(options.output_path, fresh=fresh) as writer,
        BatchProgress(console, total=len(todo) + len(invalid)) as progress,
    ):
        for item in invalid:
            line = invalid_line_output(item)
            writer.write(line)
            summary.record(line, ok=False)
            progress.advance(ok=False)
            console.print(f"[yellow]bad input:[/yellow] {item.message}", highlight=False, soft_wrap=True)
        try:
            if todo and options.via_batch_api:
                await run_via_api(todo, options.config, writer, summary, progress, options.poll_interval_s)
            elif todo:
                await run_direct(todo, options.config, writer, summary, progress)
        except asyncio.CancelledError:
            # Ctrl-C: what was answered is on disk; keep the cancellation from hiding the summary.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            summary.interrupted = True
        except BatchApiError as exc:
            summary.error = str(exc)
    compact(options.output_path)
    summary.finish()
    return summary
