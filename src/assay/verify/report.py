"""Showing a run: the JSON document (a contract), a table for people, a progress bar on a TTY."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from assay.verify.files import LockedFile
from assay.verify.runner import Outcome
from assay.verify.verdicts import Verdict, is_failure

_STYLE = {
    Verdict.VERIFIED: "green",
    Verdict.PINNED: "cyan",
    Verdict.UNATTESTED: "yellow",
}


def to_json(outcome: Outcome) -> dict[str, Any]:
    """``{"files": [{name, version, filename, sha256, verdict, reason, identity}],
    "summary": {verdict: count}}``; ``identity`` is a pin table (``kind`` plus fields) or
    null, ``filename``/``version``/``sha256`` are null only when the input had none."""
    return {
        "files": [
            {
                "name": r.file.name,
                "version": r.file.version,
                "filename": r.file.filename,
                "sha256": r.file.sha256,
                "verdict": r.verdict.value,
                "reason": r.reason,
                "identity": r.identity_fields(),
            }
            for r in outcome.results
        ],
        "summary": outcome.summary(),
    }


def summary_line(outcome: Outcome) -> Text:
    counts = outcome.summary()
    parts: list[tuple[str, str]] = []
    for verdict in Verdict:
        if count := counts[verdict.value]:
            failing = is_failure(verdict, strict=outcome.strict)
            style = "bold red" if failing else _STYLE.get(verdict, "")
            parts.append((f"{count} {verdict.value}", style))
    text = Text()
    for i, (part, style) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(part, style=style)
    failed = sum(1 for r in outcome.results if is_failure(r.verdict, strict=outcome.strict))
    text.append(
        f" — {failed} failed" if failed else " — nothing failed",
        style="bold red" if failed else "bold green",
    )
    return text


def stdout_console() -> Console:
    """Rich's console on stdout; in a log (not a terminal, no COLUMNS) wide enough for the
    reasons to stay on one line."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    return console


def print_table(outcome: Outcome, console: Console) -> None:
    table = Table(show_lines=False, header_style="bold", expand=False)
    table.add_column("package", overflow="fold")
    table.add_column("version", overflow="fold")
    table.add_column("file", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for result in outcome.results:
        failing = is_failure(result.verdict, strict=outcome.strict)
        style = "bold red" if failing else _STYLE.get(result.verdict, "")
        table.add_row(
            result.file.name,
            result.file.version or "",
            result.file.filename or "?",
            Text(result.verdict.value, style=style),
            result.reason,
        )
    console.print(table)
    console.print(summary_line(outcome))


@contextlib.contextmanager
def progress_bar(total: int, console: Console) -> Iterator[Callable[[LockedFile], None] | None]:
    """A progress bar on an interactive terminal; nothing at all otherwise (CI logs)."""
    if not console.is_terminal or total == 0:
        yield None
        return
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # auto_refresh=False: no refresh thread, so the run may still fork its check workers.
    with Progress(*columns, console=console, transient=True, auto_refresh=False) as bar:
        task = bar.add_task("verify", total=total)
        last = 0.0

        def advance(_file: LockedFile) -> None:
            nonlocal last
            bar.advance(task)
            now = time.monotonic()
            if now - last > 0.1:  # ten frames a second, as rich's own refresh thread would
                bar.refresh()
                last = now

        yield advance
