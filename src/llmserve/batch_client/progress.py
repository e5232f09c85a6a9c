"""A progress bar on stderr: done/total, rate, ETA and failures; silent when stderr is not a terminal.

Logs, CI and ``2> file`` get no bar (its redraws would be noise there); the final summary is printed
either way.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BatchProgress:
    def __init__(self, console: Console, total: int, description: str = "batch") -> None:
        self.enabled = console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self._task: TaskID = self._progress.add_task(description, total=total, failed=0, rate="")
        self._failed = 0

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def advance(self, *, ok: bool) -> None:
        if not ok:
            self._failed += 1
        self._progress.update(self._task, advance=1, failed=self._failed, rate=self._rate())

    def set_counts(self, *, completed: int, failed: int, total: int | None = None) -> None:
        """For the batch API, where the server counts: ``completed`` includes nothing failed."""
        self._failed = failed
        self._progress.update(
            self._task, completed=completed + failed, total=total, failed=failed, rate=self._rate()
        )

    def describe(self, description: str) -> None:
        self._progress.update(self._task, description=description)

    def _rate(self) -> str:
        speed = self._progress.tasks[0].speed if self._progress.tasks else None
        return f"{speed:.1f} lines/s" if speed else ""
