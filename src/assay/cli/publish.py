"""``assay publish``: Trusted Publishing to any index from CI, or a maintainer's signed upload."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("publish")
@click.argument("dists", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--repository-url",
    required=True,
    envvar="ASSAY_REPOSITORY_URL",
    help="The index's upload URL, e.g. https://pypi.example.com/legacy/.",
)
@click.option(
    "--attestations/--no-attestations",
    default=True,
    show_default=True,
    help="Upload <file>.*.attestation files found beside each distribution (PEP 740).",
)
@click.option(
    "--token",
    "api_token",
    envvar="ASSAY_PUBLISH_TOKEN",
    help="Upload with this API token (env ASSAY_PUBLISH_TOKEN, not ASSAY_TOKEN: a CI job may hold that "
    "for `assay release`) instead of Trusted Publishing: a release from a maintainer's machine.",
)
@click.option(
    "--identity-token",
    envvar="SIGSTORE_ID_TOKEN",
    help="Sign each file first (PEP 740, sigstore) as the maintainer this OIDC identity token names "
    "(audience 'sigstore'; env SIGSTORE_ID_TOKEN). The project must register that identity "
    "(assay admin maintainer add).",
)
@click.option(
    "--oidc-login",
    is_flag=True,
    help="Sign each file first, getting the identity token by sigstore's interactive browser login to the "
    "signing config's OIDC provider (on a machine with a browser).",
)
@click.option(
    "--sigstore-trust-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A sigstore client trust config (trusted root + signing config: Fulcio, Rekor, OIDC URLs) "
    "to sign with, e.g. an organisation's own Sigstore (default: sigstore's public-good instance).",
)
def publish_command(
    dists: tuple[Path, ...],
    repository_url: str,
    attestations: bool,
    api_token: str | None,
    identity_token: str | None,
    oidc_login: bool,
    sigstore_trust_config: Path | None,
) -> None:
    """Upload distributions: with a Trusted Publishing token minted from this CI job's identity, or
    with an API token (--token), optionally signed first as a maintainer (--identity-token,
    --oidc-login)."""
    from assay.publishing.client import PublishError, iter_dists, publish

    files = list(iter_dists(list(dists)))
    if not files:
        raise click.UsageError("no distributions to upload (only .attestation files were given)")
    if identity_token and oidc_login:
        raise click.UsageError("give --identity-token or --oidc-login, not both")
    say = lambda m: click.echo(f"assay: {m}")  # noqa: E731 - one line, used twice
    if identity_token or oidc_login:
        if not attestations:
            raise click.UsageError("signing makes attestations to upload: drop --no-attestations")
        from assay.publishing import signing

        try:
            config = signing.trust_config(sigstore_trust_config)
            token = identity_token or signing.interactive_token(config)
            signing.sign(files, token, config, say=say)
        except signing.SigningError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        publish(files, repository_url, with_attestations=attestations, say=say, api_token=api_token)
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
