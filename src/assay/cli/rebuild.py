"""``assay rebuild PROJECT VERSION``: rebuild a release's wheel from its sdist, compare it with
the index's, and report the outcome, signed with Sigstore (issue 14, item 4)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click


@click.command("rebuild")
@click.argument("project")
@click.argument("version")
@click.option(
    "--repository-url",
    required=True,
    envvar="ASSAY_REPOSITORY_URL",
    help="The index (its upload URL …/legacy/, its …/simple/ or its root), or a stage's preview index "
    "(…/stage/<id>/simple/). Env: ASSAY_REPOSITORY_URL.",
)
@click.option(
    "--identity-token",
    envvar=["ASSAY_IDENTITY_TOKEN", "SIGSTORE_ID_TOKEN"],
    help="The rebuilder's OIDC identity token, for its Sigstore certificate "
    "(env ASSAY_IDENTITY_TOKEN or SIGSTORE_ID_TOKEN).",
)
@click.option(
    "--trust-config",
    default="production",
    show_default=True,
    help="The Sigstore instance to sign with: production, staging, or a client trust config file "
    "(an organisation's own Fulcio and Rekor). The index must trust its root.",
)
@click.option(
    "--no-isolation",
    is_flag=True,
    help="Build in this environment (prepared by you with the build backend) instead of build's isolated one.",
)
@click.option(
    "--build-index-url",
    envvar="ASSAY_BUILD_INDEX_URL",
    help="The index the isolated build environment installs the build backend from (its PIP_INDEX_URL; "
    "default: pip's own configuration). Env: ASSAY_BUILD_INDEX_URL.",
)
@click.option("--token", envvar="ASSAY_TOKEN", help="A read token, for a private index (env ASSAY_TOKEN).")
@click.option("--dry-run", is_flag=True, help="Rebuild and compare only: sign and report nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def rebuild_command(
    project: str,
    version: str,
    repository_url: str,
    identity_token: str | None,
    trust_config: str,
    no_isolation: bool,
    build_index_url: str | None,
    token: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Rebuild PROJECT VERSION's wheel from its sdist and report whether the bytes match the index's.

    Exit status 0 when every wheel built matched the index's, 1 when one did not (the mismatch
    is reported too, with both digests), 2 for a usage error."""
    from assay.rebuilds.client import RebuildClient, RebuildError, rebuild
    from assay.rebuilds.signing import SigningFailed, SigstoreSigner

    if not dry_run and not identity_token:
        raise click.UsageError("an OIDC identity token is needed to sign the report: --identity-token, or --dry-run")
    try:
        signer = None if dry_run else SigstoreSigner(identity_token or "", trust_config)
        client = RebuildClient(repository_url, token=token)
        try:
            report = rebuild(
                client, project, version, signer=signer, no_isolation=no_isolation, build_index_url=build_index_url
            )
        finally:
            client.close()
    except (RebuildError, SigningFailed) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
    else:
        epoch = report.source_date_epoch
        click.echo(f"{report.project} {report.version}: rebuilt from {report.sdist} (SOURCE_DATE_EPOCH={epoch})")
        for o in report.outcomes:
            if o.outcome == "absent":
                click.echo(f"  {o.filename}: built (sha256:{o.rebuilt_sha256}), but the index has no such wheel")
                continue
            line = f"  {o.filename}: {o.outcome}"
            if o.outcome == "mismatch":
                line += f" (index sha256:{o.sha256}, rebuilt sha256:{o.rebuilt_sha256})"
            else:
                line += f" (sha256:{o.sha256})"
            click.echo(line + (", reported" if o.recorded is not None else ""))
    if not report.matched:
        raise SystemExit(1)
