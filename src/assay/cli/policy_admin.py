"""``assay admin policy``: an index's mirror policy (issue 12; docs/mirrors.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from assay.cli.admin import Ctx, index_option, pass_ctx
from assay.cli.common import CommandError, friendly_errors
from assay.mirror.policy import PolicyError, load_policy
from assay.mirror.report import get_policy, report, set_policy, tofu_pins

_INDEX = index_option


@click.group()
def policy() -> None:
    """The policy a mirroring index applies to upstream files (cooldown, provenance, lists)."""


@policy.command("set")
@_INDEX
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
@friendly_errors
def policy_set(ctx: Ctx, file: Path) -> None:
    """Check FILE (TOML) and the pins file it names, and make it the index's policy."""
    index_id, index = ctx.index.id, ctx.index.name
    try:
        parsed = load_policy(file)
    except PolicyError as exc:
        raise CommandError(str(exc)) from None
    set_policy(ctx.db, index_id, parsed, actor=ctx.actor)
    click.echo(f"policy of index {index} set from {file} ({len(parsed.pins)} pin(s))")


@policy.command("show")
@_INDEX
@pass_ctx
@friendly_errors
def policy_show(ctx: Ctx) -> None:
    """Print the index's policy as set (and its pins file), and the pins TOFU recorded."""
    index_id = ctx.index.id
    current = get_policy(ctx.db, index_id)
    click.echo(f"# source: {current.source}")
    click.echo(current.text.rstrip("\n") or "# (no policy: every upstream file is served)")
    if current.pins_text is not None:
        click.echo(f"\n# pins ({current.doc.provenance.pins}):")
        click.echo(current.pins_text.rstrip("\n"))
    recorded = tofu_pins(ctx.db, index_id)
    if recorded:
        click.echo("\n# pins recorded trust-on-first-use (never changed; review and move them to the pins file):")
        for pin in recorded:
            fields = ", ".join(f"{k} = {v!r}" for k, v in pin.pin.items())
            click.echo(f"# {pin.project}: {fields} (from {pin.filename}, {pin.created:%Y-%m-%d %H:%M:%S})")


@policy.command("report")
@_INDEX
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
@friendly_errors
def policy_report(ctx: Ctx, as_json: bool) -> None:
    """What the policy hid and why, and every hash upstream changed under a kept name."""
    for entry in report(ctx.db, ctx.index.id):
        if as_json:
            click.echo(json.dumps(entry.to_json()))
        else:
            state = "" if entry.current else " (no longer)"
            when = f"{entry.since:%Y-%m-%d %H:%M:%S}"
            click.echo(f"{when} {entry.project} {entry.filename} {entry.reason}{state}: {entry.detail}")
