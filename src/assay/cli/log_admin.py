"""``assay admin log``: the index's transparency log (its verifier key, its size and root)."""

from __future__ import annotations

import click

from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import friendly_errors
from assay.config import Settings

_INDEX = index_option
_BASE_URL = click.option(
    "--base-url", help="The index's public URL, as given to `assay serve` (the log's origin). Env: ASSAY_BASE_URL."
)


def _settings(ctx: Ctx, base_url: str | None) -> Settings:
    from assay.config import replace

    return replace(ctx.settings, base_url=base_url) if base_url else ctx.settings


@click.group()
def log() -> None:
    """The transparency log (C2SP tlog-tiles at {index}/log/, signed checkpoints)."""


@log.command("key")
@_INDEX
@_BASE_URL
@pass_ctx
@friendly_errors
def key(ctx: Ctx, base_url: str | None) -> None:
    """Print the log's verifier key, <origin>+<key ID>+<base64> (C2SP signed-note).

    Creates the signing key if the server has not yet (the same file it would create).
    """
    from assay.log import keys

    try:
        click.echo(keys.signer(_settings(ctx, base_url), ctx.index.name).verifier_key())
    except keys.LogKeyError as exc:
        raise click.ClickException(str(exc)) from None


@log.command("show")
@_INDEX
@_BASE_URL
@pass_ctx
@friendly_errors
def show(ctx: Ctx, base_url: str | None) -> None:
    """Print the log's origin, size and root hash (base64, as in a checkpoint)."""
    from assay.log import keys, note, store

    try:
        origin = keys.origin(_settings(ctx, base_url), ctx.index.name)
    except keys.LogKeyError as exc:
        raise click.ClickException(str(exc)) from None
    index_id = ctx.index.id
    size = store.integrate(ctx.db, index_id)
    with ctx.db.read() as session:
        root = store.root_hash(session, index_id, size)
    click.echo(f"origin {origin}\nsize {size}\nroot {note.b64encode(root)}")


@log.command("backfill")
@_INDEX
@pass_ctx
@friendly_errors
def backfill(ctx: Ctx) -> None:
    """Log the files stored before the index had a log (an index upgraded from before it).

    Each gets an ``upload`` entry marked with the time it was ``recorded``; files already
    logged are left alone, so running it twice adds nothing.
    """
    from assay import audit
    from assay.log import store

    actor = ctx.actor
    index_id = ctx.index.id
    with ctx.db.write() as session:
        added = store.backfill_uploads(session, index_id)
        if added:
            audit.record(session, actor=actor, action="log:backfill", details={"files": len(added)})
    for filename in added:
        click.echo(f"logged {filename}")
    click.echo(f"{len(added)} file(s) logged; size now {store.integrate(ctx.db, index_id)}")


@log.group("witness")
def witness() -> None:
    """Witnesses whose cosignatures the index accepts at POST /log/cosignature (C2SP
    tlog-cosignature) and serves with its checkpoint."""


@witness.command("add")
@click.argument("name")
@click.argument("key")
@_INDEX
@pass_ctx
@friendly_errors
def witness_add(ctx: Ctx, name: str, key: str) -> None:
    """Accept cosignatures by KEY, a cosignature/v1 verifier key (<name>+<key ID>+<base64>,
    as `assay log witness-key` prints it), under the label NAME."""
    from assay import audit
    from assay.log import witnesses

    actor = ctx.actor
    try:
        added = witnesses.add(ctx.db, name, key, ctx.index.id)
    except witnesses.WitnessError as exc:
        raise click.ClickException(str(exc)) from None
    with ctx.db.write() as session:
        audit.record(session, actor=actor, action="log:witness-add", details={"label": name, "key": added.vkey})
    click.echo(f"witness {name} added: {added.vkey}")


@witness.command("list")
@_INDEX
@pass_ctx
@friendly_errors
def witness_list(ctx: Ctx) -> None:
    """The configured witnesses: label and verifier key, one per line."""
    from assay.log import witnesses

    for w in witnesses.listed(ctx.db, ctx.index.id):
        click.echo(f"{w.label}\t{w.vkey}")


@witness.command("remove")
@click.argument("name")
@_INDEX
@pass_ctx
@friendly_errors
def witness_remove(ctx: Ctx, name: str) -> None:
    """Stop accepting NAME's cosignatures; those it submitted are no longer served."""
    from assay import audit
    from assay.log import witnesses

    actor = ctx.actor
    if not witnesses.remove(ctx.db, name, ctx.index.id):
        raise click.ClickException(f"no witness named {name!r}")
    with ctx.db.write() as session:
        audit.record(session, actor=actor, action="log:witness-remove", details={"label": name})
    click.echo(f"witness {name} removed")
