"""``assay publish``: Trusted Publishing to any index from CI."""

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
def publish_command(dists: tuple[Path, ...], repository_url: str, attestations: bool) -> None:
    """Upload distributions with a Trusted Publishing token minted from this CI job's identity."""
    from assay.publishing.client import PublishError, iter_dists, publish

    files = list(iter_dists(list(dists)))
    if not files:
        raise click.UsageError("no distributions to upload (only .attestation files were given)")
    try:
        publish(files, repository_url, with_attestations=attestations, say=lambda m: click.echo(f"assay: {m}"))
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
