"""The output file: appended line by line as answers arrive, resumed from, and tidied at the end.

Each answer is appended and flushed the moment it completes, so a crash or Ctrl-C loses nothing that
was already answered. A rerun reads the file back, keeps every successful line and re-sends the rest;
the final rewrite (temp file + ``os.replace``, so a reader never sees half a file) drops the failed
lines that a later attempt superseded, leaving one line per ``custom_id``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from llmserve.batch_client.lines import encode, is_success, read_output_lines


@dataclass
class PreviousOutput:
    """What an earlier run left: the custom_ids already answered successfully."""

    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def read_previous(path: Path) -> PreviousOutput:
    previous = PreviousOutput()
    if not path.exists():
        return previous
    for line in read_output_lines(path.read_text(encoding="utf-8", errors="replace")):
        custom_id = line["custom_id"]
        if is_success(line):
            previous.succeeded.add(custom_id)
        else:
            previous.failed.add(custom_id)
    previous.failed -= previous.succeeded
    return previous


class OutputWriter:
    """Appends output lines, flushing each one; ``fresh`` truncates an existing file first."""

    def __init__(self, path: Path, *, fresh: bool) -> None:
        self.path = path
        self._fresh = fresh
        self._file: IO[bytes] | None = None

    def __enter__(self) -> OutputWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb" if self._fresh else "ab")
        if not self._fresh and self._file.tell() > 0 and not _ends_with_newline(self.path):
            # A crash mid-write left a torn last line: start ours on a line of its own.
            self._file.write(b"\n")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, line: dict[str, Any]) -> None:
        assert self._file is not None, "use OutputWriter as a context manager"
        self._file.write(encode(line))
        self._file.flush()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def latest_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per custom_id: the last one written, except that a success is never replaced."""
    chosen: dict[str, dict[str, Any]] = {}
    for line in lines:
        custom_id = line["custom_id"]
        current = chosen.get(custom_id)
        if current is not None and is_success(current) and not is_success(line):
            continue
        chosen.pop(custom_id, None)  # re-insert, so the file keeps completion order
        chosen[custom_id] = line
    return list(chosen.values())


def compact(path: Path) -> None:
    """Rewrites ``path`` with one line per custom_id, atomically."""
    if not path.exists():
        return
    lines = latest_lines(list(read_output_lines(path.read_text(encoding="utf-8", errors="replace"))))
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as temp:
            temp.writelines(encode(line) for line in lines)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
