"""``assay admin index``: the indexes of a server (issue 11, part 3; PEP 807)."""

from __future__ import annotations

import json

import click

from assay.admin import indexes
from assay.cli.admin import Ctx, pass_ctx
from assay.cli.common import friendly_errors


@click.group()
def index() -> None:
    """Indexes: several isolated indexes on one server (the default one at the site root)."""


@index.command("create")
@click.argument("name")
@click.option("--description", default="", help="A line saying what the index is for.")
@click.option(
    "--private/--public",
    "private",
    default=None,
    help="Whether reading needs a token of this index (default: the server's --private setting).",
)
@click.option("--audience", help="Its Trusted Publishing audience (default: the server's).")
@click.option(
    "--mirror",
    metavar="URL",
    help="Make it a mirror of this PEP 691/503 simple index (served through its policy; no uploads).",
)
@click.option(
    "--bases",
    metavar="NAME[,NAME...]",
    help="Mirror indexes this hosted index is layered over, in order; a project it hosts shadows them.",
)
@pass_ctx
@friendly_errors
def create(
    ctx: Ctx,
    name: str,
    description: str,
    private: bool | None,
    audience: str | None,
    mirror: str | None,
    bases: str | None,
) -> None:
    """Create an empty index served under /NAME/ (/NAME/simple/, /NAME/legacy/, ...)."""
    names = [b.strip() for b in bases.split(",")] if bases else []
    if any(not b for b in names):
        raise click.BadParameter("a comma-separated list of index names", param_hint="--bases")
    indexes.create_index(
        ctx.db,
        name,
        description=description,
        private=private,
        audience=audience,
        mirror=mirror,
        bases=names,
        actor=ctx.actor,
    )
    if mirror:
        click.echo(f"created index {name}: /{name}/simple/ mirrors {mirror} (set its policy: assay admin policy set)")
    else:
        click.echo(f"created index {name}: /{name}/simple/ (upload to /{name}/legacy/)")


@index.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per index.")
@pass_ctx
@friendly_errors
def list_(ctx: Ctx, as_json: bool) -> None:
    """The indexes, with their URLs and sizes."""
    for i in indexes.list_indexes(ctx.db):
        if as_json:
            click.echo(json.dumps(_doc(i)))
        else:
            click.echo(f"{i.name}\t{i.prefix or '/'}\t{i.projects} projects\t{i.files} files\t{i.description}")


def _doc(i: indexes.IndexInfo) -> dict[str, object]:
    return {
        "name": i.name,
        "path": i.prefix + "/",
        "description": i.description,
        "private": i.private,
        "audience": i.audience,
        "created": i.created.isoformat(),
        "projects": i.projects,
        "files": i.files,
        "tokens": i.tokens,
        "publishers": i.publishers,
        "mirror": i.mirror_url,
        "bases": list(i.bases),
    }


@index.command("show")
@click.argument("name")
@pass_ctx
@friendly_errors
def show(ctx: Ctx, name: str) -> None:
    """One index's settings and contents, as JSON."""
    click.echo(json.dumps(_doc(indexes.show_index(ctx.db, name)), indent=2))


@index.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
@friendly_errors
def delete(ctx: Ctx, name: str, yes: bool) -> None:
    """Delete an index with all its projects, files, tokens, publishers and log."""
    if not yes:
        click.confirm(f"Delete index {name} and everything in it?", abort=True)
    removed = indexes.delete_index(ctx.db, ctx.blobs, name, actor=ctx.actor)
    click.echo(f"deleted index {name} ({removed} files)")
