"""``assay admin blobs``: the blob store (moving it to S3)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from assay.cli.admin import Ctx, pass_ctx
from assay.cli.common import CommandError, friendly_errors


@click.group()
def blobs() -> None:
    """The blob store (distribution and metadata files)."""


@blobs.command()
@click.option("--to", "target", required=True, help="The store to copy into: s3://bucket/prefix.")
@click.option(
    "--from", "source", type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The files directory to copy from (default: the blob_store_fallback setting if set, else "
    "the data directory's files/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@friendly_errors
def migrate(ctx: Ctx, target: str, source: Path | None, as_json: bool) -> None:
    """Copy every file of the index into TARGET, each one verified against its recorded sha256
    before and after the copy; already copied files are checked and skipped, so it can be run again.

    No downtime for reads: first restart the servers with --blob-store TARGET and
    --blob-store-fallback set to the old files directory (they read from both, upload to TARGET),
    then run this while they serve, then drop the fallback. Exit status 1 when a file could not
    be copied intact.
    """
    from assay.admin.migrate import migrate as run
    from assay.config import ConfigError, replace
    from assay.storage.blobs import FilesystemBlobStore
    from assay.storage.stores import blob_store

    settings = ctx.settings
    try:
        replace(settings, blob_store=target)
    except ConfigError as exc:
        raise CommandError(f"--to: {exc}") from None
    if source is None:
        source = settings.blob_store_fallback or settings.blob_dir
    if not source.is_dir():
        raise CommandError(f"no files directory at {source} to copy from (give --from)")
    old = FilesystemBlobStore(source, settings.quarantine_dir)
    new = blob_store(settings, target)
    ctx.announce()
    report = run(ctx.db, old, new)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "from": old.describe(),
                    "to": new.describe(),
                    "copied": len(report.copied),
                    "present": len(report.present),
                    "unreferenced": report.unreferenced,
                    "problems": [{"key": k, "detail": d} for k, d in report.problems],
                }
            )
        )
    else:
        click.echo(
            f"copied {len(report.copied)} blob(s) from {old.describe()} to {new.describe()}; "
            f"{len(report.present)} already there (verified); {report.unreferenced} unreferenced left behind"
        )
        for key, detail in report.problems:
            click.echo(f"problem\t{key}\t{detail}")
    if report.problems:
        raise click.exceptions.Exit(1)
