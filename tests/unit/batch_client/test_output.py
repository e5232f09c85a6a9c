"""The output file: written as answers arrive, read back to resume, left with one line per custom_id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmserve.batch_client.lines import error_line, success_line
from llmserve.batch_client.output import OutputWriter, compact, latest_lines, read_previous


def ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def write(path: Path, *lines: dict[str, Any]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_each_line_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with OutputWriter(path, fresh=True) as writer:
        writer.write(success_line("a", 200, "", {}))
        assert ids(path) == ["a"]  # a crash now would keep it
        writer.write(success_line("b", 200, "", {}))
        assert ids(path) == ["a", "b"]


def test_fresh_truncates_and_resume_appends(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write(path, success_line("old", 200, "", {}))
    with OutputWriter(path, fresh=False) as writer:
        writer.write(success_line("new", 200, "", {}))
    assert ids(path) == ["old", "new"]
    with OutputWriter(path, fresh=True) as writer:
        writer.write(success_line("only", 200, "", {}))
    assert ids(path) == ["only"]


def test_appending_after_a_torn_line_keeps_the_new_line_readable(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(success_line("a", 200, "", {})) + '\n{"custom_id": "b", "respo')
    with OutputWriter(path, fresh=False) as writer:
        writer.write(success_line("c", 200, "", {}))
    assert read_previous(path).succeeded == {"a", "c"}


def test_resume_knows_what_succeeded_and_what_must_run_again(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write(
        path,
        success_line("ok", 200, "", {}),
        error_line("bad", "server_error", "boom", status=500, body={}),
        error_line("gone", "connection_error", "refused"),
        error_line("later-ok", "timeout", "slow"),
        success_line("later-ok", 200, "", {}),
    )
    previous = read_previous(path)
    assert previous.succeeded == {"ok", "later-ok"}
    assert previous.failed == {"bad", "gone"}
    assert read_previous(tmp_path / "missing.jsonl").succeeded == set()


def test_compact_leaves_one_line_per_custom_id_in_completion_order(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write(
        path,
        success_line("a", 200, "", {"n": 1}),
        error_line("b", "server_error", "boom", status=500),
        success_line("c", 200, "", {}),
        success_line("b", 200, "", {"n": 2}),
    )
    compact(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "c", "b"]
    assert lines[2]["response"]["body"] == {"n": 2}
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_a_success_is_never_replaced_by_a_later_failure() -> None:
    ok = success_line("a", 200, "", {})
    assert latest_lines([ok, error_line("a", "timeout", "slow")]) == [ok]
