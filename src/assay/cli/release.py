"""``assay release list|show|approve|reject``: a maintainer acts on staged releases from their
own machine (issue 14; like ``npm stage``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

_F = TypeVar("_F", bound=Callable[..., Any])


def _connection(command: _F) -> _F:
    command = click.option("--json", "as_json", is_flag=True, help="Print the index's JSON answer instead of text.")(
        command
    )
    command = click.option(
        "--token",
        envvar="ASSAY_TOKEN",
        help="Your API token (env ASSAY_TOKEN).",
    )(command)
    return click.option(
        "--repository-url",
        required=True,
        envvar="ASSAY_REPOSITORY_URL",
        help="The index: its upload URL (…/legacy/), its …/simple/ or its root. Env: ASSAY_REPOSITORY_URL.",
    )(command)


def _run(repository_url: str, token: str | None, call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    from assay.stages.client import ReleaseClient, ReleaseError

    try:
        client = ReleaseClient(repository_url, token or "")
        try:
            return call(client)
        finally:
            client.close()
    except ReleaseError as exc:
        raise click.ClickException(str(exc)) from None


def _print_stage(stage: dict[str, Any]) -> None:
    click.echo(f"{stage['project']} {stage['version']}: staged, expires {stage['expires']}")
    click.echo(f"  preview: {stage['preview']}")
    if stage["approvers"]:
        click.echo(f"  approved so far by: {', '.join(stage['approvers'])}")
    for f in stage["files"]:
        click.echo(f"  {f['filename']}  {f['size']} bytes  sha256:{f['digests']['sha256']}")
        click.echo(f"    uploaded {f['upload_time']} by {f['triggered_by']}" + (", attested" if f["attested"] else ""))


@click.group("release")
def release() -> None:
    """Staged releases: list, show, approve (with your TOTP code) or reject them."""


@release.command("list")
@click.argument("project")
@_connection
def release_list(project: str, repository_url: str, token: str | None, as_json: bool) -> None:
    """The open stages of PROJECT."""
    doc = _run(repository_url, token, lambda c: c.list(project))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    if not doc["stages"]:
        click.echo(f"{doc['project']}: no staged releases (releases: {doc['releases']})")
    for stage in doc["stages"]:
        _print_stage(stage)


@release.command("show")
@click.argument("project")
@click.argument("version")
@_connection
def release_show(project: str, version: str, repository_url: str, token: str | None, as_json: bool) -> None:
    """PROJECT VERSION's stage: its files, their digests and the preview index URL."""
    doc = _run(repository_url, token, lambda c: c.show(project, version))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_stage(doc)


@release.command("approve")
@click.argument("project")
@click.argument("version")
@click.option("--totp", "code", help="Your TOTP code (asked for if not given).")
@_connection
def release_approve(
    project: str, version: str, code: str | None, repository_url: str, token: str | None, as_json: bool
) -> None:
    """Make PROJECT VERSION's stage live, every file at once (needs an owner and a TOTP code)."""
    if code is None:
        code = click.prompt("TOTP code", hide_input=False)
    doc = _run(repository_url, token, lambda c: c.approve(project, version, str(code).strip()))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    if doc["status"] == "pending":
        click.echo(
            f"approval recorded for {doc['project']} {doc['version']}: {len(doc['approvers'])} of "
            f"{doc['approvals_required']} owners ({', '.join(doc['approvers'])}); not live yet"
        )
        return
    click.echo(f"approved {doc['project']} {doc['version']}: {len(doc['files'])} file(s) live")
    for name, index in zip(doc["files"], doc["log_indexes"], strict=True):
        click.echo(f"  {name}  (log entry {index})")


@release.command("reject")
@click.argument("project")
@click.argument("version")
@click.option("--reason", help="Why (kept in the audit log).")
@_connection
def release_reject(
    project: str, version: str, reason: str | None, repository_url: str, token: str | None, as_json: bool
) -> None:
    """Throw PROJECT VERSION's stage away (its filenames stay used)."""
    doc = _run(repository_url, token, lambda c: c.reject(project, version, reason))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"rejected {doc['project']} {doc['version']}: {len(doc['files'])} file(s) removed")
