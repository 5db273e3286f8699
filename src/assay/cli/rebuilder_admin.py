"""``assay admin rebuilder add|list|remove PROJECT``: the Sigstore identities a project trusts
to rebuild its sdists (issue 14, item 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import friendly_errors

_F = TypeVar("_F", bound=Callable[..., Any])


def _identity_options(command: _F) -> _F:
    command = click.option("--subject", help="The certificate's subject (SAN URI), e.g. a CI workflow's.")(command)
    command = click.option("--email", help="The certificate's e-mail address (SAN).")(command)
    return click.option("--issuer", required=True, help="The OIDC issuer URL the identity's tokens come from.")(command)


@click.group("rebuilder")
def rebuilder() -> None:
    """Rebuilders: Sigstore identities whose rebuilds of a project's sdists count."""


@rebuilder.command("add")
@click.argument("project")
@_identity_options
@index_option
@pass_ctx
@friendly_errors
def rebuilder_add(ctx: Ctx, project: str, issuer: str, email: str | None, subject: str | None) -> None:
    """Trust ISSUER's EMAIL or SUBJECT to rebuild PROJECT's releases."""
    from assay.rebuilds import registry

    added = registry.add(
        ctx.db, project, issuer=issuer, email=email, subject=subject, actor=ctx.actor, index_id=ctx.index.id
    )
    click.echo(f"{project}: rebuilder {added.summary()} added")


@rebuilder.command("list")
@click.argument("project")
@index_option
@pass_ctx
@friendly_errors
def rebuilder_list(ctx: Ctx, project: str) -> None:
    from assay.rebuilds import registry

    for r in registry.listing(ctx.db, project, index_id=ctx.index.id):
        click.echo(f"{r.kind}\t{r.identity}\t{r.issuer}")


@rebuilder.command("remove")
@click.argument("project")
@_identity_options
@index_option
@pass_ctx
@friendly_errors
def rebuilder_remove(ctx: Ctx, project: str, issuer: str, email: str | None, subject: str | None) -> None:
    """Stop trusting a rebuilder (its reports no longer count and are no longer listed)."""
    from assay.rebuilds import registry

    registry.remove(
        ctx.db, project, issuer=issuer, email=email, subject=subject, actor=ctx.actor, index_id=ctx.index.id
    )
    click.echo(f"{project}: rebuilder {email or subject} ({issuer}) removed")
