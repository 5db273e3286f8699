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
from assay.verify.verdicts import FileResult, Verdict, is_failure

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
                # Issue 14, item 4: for a wheel under a rebuild pin, who reproduced it.
                **({"reproduced_by": outcome.rebuilds[i]} if i in outcome.rebuilds else {}),
            }
            for i, r in enumerate(outcome.results)
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


#: The width the table is laid out for where no terminal says otherwise (a CI log, a pipe):
#: what a review tool or a log viewer shows without scrolling.
LOG_WIDTH = 100


def stdout_console() -> Console:
    """Rich's console on stdout; in a log (not a terminal, no COLUMNS) ``LOG_WIDTH`` wide."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console


def _result(result: FileResult, *, strict: bool) -> Text:
    """What the verdict means for this run: ``--strict`` turns ``unattested`` from a warning
    into a failure, and the row says so, not only the exit status."""
    if is_failure(result.verdict, strict=strict):
        return Text("FAILED", style="bold red")
    if result.verdict is Verdict.UNATTESTED:
        return Text("warning", style="yellow")
    return Text("ok", style="green")


def print_table(outcome: Outcome, console: Console) -> None:
    """One row per file, its reason as a numbered note under the table: the reasons are long
    and mostly shared (every file of a package attested by the same identity), so printing
    each once keeps the table narrow enough to read at ``LOG_WIDTH`` columns."""
    notes: dict[str, int] = {}
    table = Table(show_lines=False, header_style="bold", expand=False)
    table.add_column("package", overflow="fold", ratio=2)
    table.add_column("version", overflow="fold", ratio=1)
    table.add_column("file", overflow="fold", ratio=4)
    table.add_column("verdict", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("note", no_wrap=True, justify="right")
    for result in outcome.results:
        failing = is_failure(result.verdict, strict=outcome.strict)
        style = "bold red" if failing else _STYLE.get(result.verdict, "")
        number = notes.setdefault(result.reason, len(notes) + 1)
        table.add_row(
            result.file.name,
            result.file.version or "",
            result.file.filename or "?",
            Text(result.verdict.value, style=style),
            _result(result, strict=outcome.strict),
            Text(f"[{number}]"),
        )
    console.print(table)
    legend = Table.grid(padding=(0, 1))
    legend.add_column(no_wrap=True, justify="right")
    legend.add_column(overflow="fold")
    for reason, number in notes.items():
        legend.add_row(Text(f"[{number}]"), Text(reason))
    console.print(legend)
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
