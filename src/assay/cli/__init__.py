"""The ``assay`` command. Subcommands are thin: parse, call a service, print."""

from __future__ import annotations

import click

from assay import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="assay")
def main() -> None:
    """assay: a package index that knows where every file came from, and a client that checks it."""


def _register() -> None:
    from assay.cli import admin, attestations_admin, fsck, publish, publishing_admin, serve

    main.add_command(serve.serve)
    main.add_command(admin.admin)
    admin.admin.add_command(publishing_admin.issuer)
    admin.admin.add_command(publishing_admin.publisher)
    admin.admin.add_command(attestations_admin.provenance)
    admin.admin.add_command(fsck.fsck)
    main.add_command(publish.publish_command)
    # Optional capabilities register themselves if present.
    from assay.cli import extensions

    extensions.register(main)


_register()
