"""``assay admin maintainer add|list|remove`` (issue 14, item 3)."""

from __future__ import annotations

import json

import click

from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import friendly_errors


@click.group()
def maintainer() -> None:
    """Maintainer identities: Sigstore identities whose PEP 740 attestations a project accepts
    on an API-token upload (a release signed from a maintainer's own machine)."""


def _identity_options(command: click.decorators.FC) -> click.decorators.FC:
    command = click.option("--subject", help="The signing certificate's subject (SAN), e.g. a URI.")(command)
    command = click.option("--email", help="The signing certificate's e-mail (what Fulcio issues for a person).")(
        command
    )
    return click.option(
        "--issuer",
        required=True,
        help="The OIDC issuer the certificate names (Fulcio extension 1.3.6.1.4.1.57264.1.8).",
    )(command)


def _which(email: str | None, subject: str | None) -> tuple[str, str]:
    if (email is None) == (subject is None):
        raise click.UsageError("give exactly one of --email or --subject")
    return ("email", email) if email is not None else ("subject", str(subject))


@maintainer.command("add")
@click.argument("project")
@_identity_options
@index_option
@pass_ctx
@friendly_errors
def add_command(ctx: Ctx, project: str, issuer: str, email: str | None, subject: str | None) -> None:
    """Register a maintainer identity of PROJECT."""
    from assay.admin import maintainers

    kind, value = _which(email, subject)
    identity = maintainers.add(
        ctx.db, project, issuer=issuer, identity_kind=kind, value=value, actor=ctx.actor, index_id=ctx.index.id
    )
    click.echo(f"{project}: added {identity.summary()}")


@maintainer.command("list")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per identity.")
@index_option
@pass_ctx
@friendly_errors
def list_command(ctx: Ctx, project: str, as_json: bool) -> None:
    """List PROJECT's maintainer identities."""
    from assay.admin import maintainers

    _project, rows = maintainers.list_identities(ctx.db, project, index_id=ctx.index.id)
    for row in rows:
        if as_json:
            click.echo(json.dumps({**row.identity.to_publisher(), "added": row.added}))
        else:
            click.echo(
                f"{row.identity.identity_kind}={row.identity.value} issuer={row.identity.issuer} added={row.added}"
            )
    if not rows and not as_json:
        click.echo(f"{project} has no maintainer identities")


@maintainer.command("remove")
@click.argument("project")
@_identity_options
@index_option
@pass_ctx
@friendly_errors
def remove_command(ctx: Ctx, project: str, issuer: str, email: str | None, subject: str | None) -> None:
    """Remove a maintainer identity of PROJECT (files it signed keep their provenance)."""
    from assay.admin import maintainers

    kind, value = _which(email, subject)
    identity = maintainers.remove(
        ctx.db, project, issuer=issuer, identity_kind=kind, value=value, actor=ctx.actor, index_id=ctx.index.id
    )
    click.echo(f"{project}: removed {identity.summary()}")
