"""The ``assay`` command. Subcommands are thin: parse, call a service, print.

Each subcommand's module is imported only when that subcommand runs (see ``lazy.py``).
"""

from __future__ import annotations

import click

from assay import __version__
from assay.cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "serve": "assay.cli.serve:serve",
        "admin": "assay.cli.admin:admin",
        "publish": "assay.cli.publish:publish_command",
        "release": "assay.cli.release:release",
        "rebuild": "assay.cli.rebuild:rebuild_command",
        "verify": "assay.cli.verify:verify",
        "install": "assay.cli.verify:install_command",
        "pins": "assay.cli.verify:pins",
        "log": "assay.cli.log_client:log",
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="assay")
def main() -> None:
    """assay: a package index that knows where every file came from, and a client that checks it."""
