"""``assay admin provenance ...``."""

from __future__ import annotations

from pathlib import Path

import click

from assay.admin import AdminError
from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import friendly_errors


@click.group()
def provenance() -> None:
    """PEP 740 provenance of files already on the index."""


@provenance.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", "filename", help="The distribution the provenance is for (default: FILE minus .provenance).")
@index_option
@pass_ctx
@friendly_errors
def import_command(ctx: Ctx, files: tuple[Path, ...], filename: str | None) -> None:
    """Attach provenance objects (e.g. mirrored with their files from another index) after
    verifying every attestation under the index's trust root."""
    from assay.attestations.backfill import import_provenance
    from assay.attestations.trust import TrustRootError, load_trust_root

    if filename and len(files) > 1:
        raise click.UsageError("--file names one distribution; give one FILE with it")
    try:
        trust = load_trust_root(ctx.settings.sigstore_trust_root)
    except TrustRootError as exc:
        raise AdminError(str(exc)) from None
    for path in files:
        result = import_provenance(ctx.db, trust, path, filename=filename, actor=ctx.actor, index_id=ctx.index.id)
        note = (
            " (project has no registered publisher: the bundle's own identity, as proven by its certificates)"
            if result.trusted_block
            else ""
        )
        who = ", ".join(result.identities)
        click.echo(f"{result.filename}: {result.attestations} attestation(s) from {who} verified and attached{note}")
