"""Commands of the capabilities beyond the index core (publish, verify, install, pins)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add the client-side commands to ``main``."""
    from assay.cli import verify

    verify.register(main)
