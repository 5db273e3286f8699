"""``assay admin issuer ...`` and ``assay admin publisher ...``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from assay.accounts.tokens import parse_duration
from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import friendly_errors
from assay.publishers import KINDS, PublisherKind
from assay.publishing import admin as tp_admin


@click.group()
def issuer() -> None:
    """OIDC issuers trusted for Trusted Publishing (the allow-list)."""


@issuer.command("add")
@click.option("--issuer", "url", required=True, help="The issuer URL, exactly as in its tokens' iss claim.")
@click.option(
    "--jwks",
    help="A JWKS file or URL to take keys from instead of the issuer's OIDC discovery "
    "document (air-gapped deployments, GitHub Enterprise Server behind a firewall).",
)
@click.option(
    "--algorithm",
    "algorithms",
    multiple=True,
    default=("RS256",),
    show_default=True,
    help="Signature algorithm accepted from this issuer (repeatable), e.g. RS256, ES256.",
)
@click.option(
    "--max-token-age",
    default="2h",
    show_default=True,
    help="Refuse tokens valid for longer than this (exp - iat): a number and a unit, s, m, h or d (e.g. 90m).",
)
@pass_ctx
@friendly_errors
def issuer_add(ctx: Ctx, url: str, jwks: str | None, algorithms: tuple[str, ...], max_token_age: str) -> None:
    """Trust an OIDC issuer."""
    seconds = _seconds(max_token_age)
    added = tp_admin.add_issuer(
        ctx.db, url, jwks=jwks, algorithms=list(algorithms), max_token_age=seconds, actor=ctx.actor
    )
    source = f"keys from {jwks}" if jwks else "keys from its OIDC discovery document"
    click.echo(f"trusted issuer {added} ({', '.join(algorithms)}; {source}; tokens up to {seconds} s)")


def _seconds(text: str) -> int:
    try:
        return int(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-token-age") from None


@issuer.command("set")
@click.argument("url")
@click.option(
    "--max-token-age",
    required=True,
    help="Refuse tokens valid for longer than this (exp - iat): a number and a unit, s, m, h or d (e.g. 90m).",
)
@pass_ctx
@friendly_errors
def issuer_set(ctx: Ctx, url: str, max_token_age: str) -> None:
    """Change a trusted issuer's settings."""
    seconds = _seconds(max_token_age)
    tp_admin.set_issuer(ctx.db, url, max_token_age=seconds, actor=ctx.actor)
    click.echo(f"issuer {url.rstrip('/')}: tokens up to {seconds} s")


@issuer.command("list")
@pass_ctx
@friendly_errors
def issuer_list(ctx: Ctx) -> None:
    for i in tp_admin.list_issuers(ctx.db):
        click.echo(
            f"{i.url}\t{','.join(i.algorithms)}\t{i.jwks_source or 'discovery'}\t{i.publishers} publisher(s)"
            f"\tmax token age {i.max_token_age} s"
        )


@issuer.command("remove")
@click.argument("url")
@pass_ctx
@friendly_errors
def issuer_remove(ctx: Ctx, url: str) -> None:
    """Stop trusting an issuer (it must have no publishers left)."""
    tp_admin.remove_issuer(ctx.db, url, actor=ctx.actor)
    click.echo(f"no longer trusting {url}")


@click.group()
def publisher() -> None:
    """Trusted Publishers: the CI workloads allowed to publish a project without a stored secret."""


@publisher.group("add")
def publisher_add() -> None:
    """Register a publisher for a project. If the project does not exist yet the publisher is
    pending: the first trusted publish creates the project (with --owner as its owner)."""


F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    """--project, --issuer, --owner and --reserve, shared by every kind."""
    for option in (
        click.option(
            "--stage-only",
            is_flag=True,
            help="Its uploads always land in a stage that an owner approves (assay release approve), "
            "whatever the project's --releases setting: it can never publish directly.",
        ),
        click.option(
            "--reserve",
            is_flag=True,
            help="For a project that does not exist yet: reserve its name for this pending publisher, "
            "refusing uploads with a user's credential that would create it (except --owner's) until "
            "the pending publisher is used, removed or expires.",
        ),
        click.option("--owner", help="For a project that does not exist yet: the user who will own it."),
        click.option("--issuer", "issuer_url", help="The OIDC issuer (default: the provider's public one)."),
        click.option("--project", required=True, help="The project this publisher may publish."),
    ):
        func = option(func)
    return func


def _add(
    ctx: Ctx,
    kind: str,
    project: str,
    issuer_url: str | None,
    owner: str | None,
    config: dict[str, Any],
    reserve: bool = False,
    stage_only: bool = False,
) -> None:
    added = tp_admin.add_publisher(
        ctx.db,
        kind_name=kind,
        project=project,
        config=config,
        issuer=issuer_url,
        owner=owner,
        pending_days=ctx.settings.pending_publisher_days,
        actor=ctx.actor,
        reserve=reserve,
        index_id=ctx.index.id,
        stage_only=stage_only,
    )
    if added.auto_trusted_issuer:
        click.echo(f"note: now trusting the {kind} issuer (keys from its OIDC discovery document)", err=True)
    if added.pending:
        click.echo(
            f"added pending publisher {added.id} for {project}: the first trusted publish creates the "
            f"project (expires in {ctx.settings.pending_publisher_days} days)"
            + ("; the name is reserved for it until then" if reserve else "")
        )
    else:
        click.echo(f"added publisher {added.id} for {project}" + (" (stage-only)" if stage_only else ""))


def _kind_command(kind: PublisherKind[Any]) -> click.Command:
    """``assay admin publisher add <kind>``: the shared options, then the kind's own (generated
    from its ``Config``: ``assay.publishers.base.PublisherKind.cli_options``)."""

    @publisher_add.command(kind.name, help=kind.help)
    @_common
    @index_option
    @pass_ctx
    @friendly_errors
    def command(
        ctx: Ctx,
        /,
        project: str,
        issuer_url: str | None,
        owner: str | None,
        reserve: bool,
        stage_only: bool,
        **values: Any,
    ) -> None:
        _add(ctx, kind.name, project, issuer_url, owner, kind.config_from_cli(values), reserve, stage_only)

    command.params.extend(kind.cli_options())
    return command


for _kind in KINDS.values():
    _kind_command(_kind)


@publisher.command("list")
@click.option("--project", help="Only publishers of this project.")
@index_option
@pass_ctx
@friendly_errors
def publisher_list(ctx: Ctx, project: str | None) -> None:
    """One publisher a line: id, kind, issuer, what it matches (with the repository owner id it is
    pinned to, for GitHub-family kinds), projects, and for a pending one its expiry."""
    for p in tp_admin.list_publishers(ctx.db, project, index_id=ctx.index.id):
        description = p.description
        if p.pins_owner_id:
            description += f" owner-id={p.owner_id or '(recorded at the first publish)'}"
        extra = f"\tpending until {p.expires:%Y-%m-%d}" if p.expires else ""
        if p.reserved:
            extra += ", name reserved"
        click.echo(f"{p.id}\t{p.kind}\t{p.issuer}\t{description}\t{','.join(p.projects) or '-'}{extra}")


@publisher.command("remove")
@click.argument("publisher_id")
@click.option("--project", help="Only unregister it from this project.")
@index_option
@pass_ctx
@friendly_errors
def publisher_remove(ctx: Ctx, publisher_id: str, project: str | None) -> None:
    """Remove a publisher (or a pending one: pending-<id>)."""
    click.echo(tp_admin.remove_publisher(ctx.db, publisher_id, project=project, actor=ctx.actor, index_id=ctx.index.id))
