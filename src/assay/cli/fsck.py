"""``assay admin fsck``."""

from __future__ import annotations

import json

import click

from assay.cli.admin import Ctx, pass_ctx
from assay.cli.common import friendly_errors


@click.command()
@click.option("--repair", is_flag=True, help="Quarantine what is wrong (moved aside, never deleted).")
@click.option(
    "--grace",
    default=600,
    show_default=True,
    help="Seconds a blob or staging file may be unreferenced before it counts (uploads in flight).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@friendly_errors
def fsck(ctx: Ctx, repair: bool, grace: int, as_json: bool) -> None:
    """Check the database against the blob store and every file against its sha256.

    Exit status: 0 when everything is consistent (or was repaired), 1 when problems remain.
    """
    from assay.admin import fsck as checker

    blobs = ctx.blobs
    report = checker.check(ctx.db, blobs, grace=grace, data_dir=ctx.settings.data_dir)
    quarantine = None
    if repair and report.problems:
        quarantine = checker.repair(ctx.db, blobs, report, data_dir=ctx.settings.data_dir, actor=ctx.actor)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "files_checked": report.files_checked,
                    "blobs_seen": report.blobs_seen,
                    "log_entries": report.log_entries,
                    "problems": [vars(p) for p in report.problems],
                    "repaired": len(report.repaired),
                    "quarantine": quarantine,
                }
            )
        )
    else:
        click.echo(
            f"checked {report.files_checked} files, {report.blobs_seen} blobs and {report.log_entries} log entries"
        )
        for p in report.problems:
            click.echo(f"{p.kind}\t{p.filename or '-'}\t{p.key}\t{p.detail}")
        if repair and report.problems:
            moved = f"; quarantined into {quarantine}" if quarantine else ""
            click.echo(f"repaired {len(report.repaired)} problem(s){moved}")
    if len(report.problems) > (len(report.repaired) if repair else 0):
        raise click.exceptions.Exit(1)
