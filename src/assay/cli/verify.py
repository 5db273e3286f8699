"""``assay verify``, ``assay install`` and ``assay pins``: the consumer side.

Exit codes: 0 nothing failed, 1 something failed (a verdict, or an install step), 2 usage or
input errors (a lock that is not PEP 751, a hash that is not sha256, no index, bad pins).

The work lives in ``assay.verify.session`` and is imported when a command runs, so that the
rest of the ``assay`` command line does not pay for sigstore, httpx and rich at start-up.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from assay.verify.errors import InputError

if TYPE_CHECKING:
    from assay.verify.changes import PinChange
    from assay.verify.pins import PinSet
    from assay.verify.runner import Settings
    from assay.verify.session import Inputs

P = ParamSpec("P")
R = TypeVar("R")

_PASSTHROUGH = "assay.passthrough"
PINS_FILE = ".provenance.toml"


class _InputProblem(click.ClickException):
    exit_code = 2


class PassThroughCommand(click.Command):
    """Keeps everything after a bare ``--`` for another program (``pip lock``, the installer)
    instead of parsing it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[_PASSTHROUGH] = args[at + 1 :]
            args = args[:at]
        else:
            ctx.meta[_PASSTHROUGH] = None
        return super().parse_args(ctx, args)


def _passthrough(ctx: click.Context) -> list[str] | None:
    value: list[str] | None = ctx.meta.get(_PASSTHROUGH)
    return value


def _input_errors(func: Callable[P, R]) -> Callable[P, R]:
    """An ``InputError`` becomes one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            raise _InputProblem(str(exc)) from None

    return wrapper


def _options(
    *options: Callable[[Callable[P, R]], Callable[P, R]],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def apply(func: Callable[P, R]) -> Callable[P, R]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


_verification_options = _options(
    click.option(
        "--pins",
        "pins_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=PINS_FILE,
        show_default=True,
        help="The pins file: TOML, or the older .provenance.txt format, told apart by content "
        "(the other file of the pair beside it is read too).",
    ),
    click.option("--strict", is_flag=True, help="Fail on unattested files too."),
    click.option(
        "--offline",
        is_flag=True,
        help="Use only the provenance cache; make no network request at all.",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Provenance cache (default: the user cache dir; $XDG_CACHE_HOME on Linux).",
    ),
    click.option("--staging", is_flag=True, help="Trust Sigstore's staging root, not production."),
    click.option(
        "--trust-root",
        "trust_root_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Trust this Sigstore trusted_root.json (or client trust config) instead.",
    ),
    click.option(
        "--jobs",
        "-j",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="Concurrent HTTP requests.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0.01),
        default=20.0,
        show_default=True,
        help="Seconds allowed for each HTTP request, body included.",
    ),
    click.option(
        "--retries",
        type=click.IntRange(0, 10),
        default=3,
        show_default=True,
        help="Retries after a timeout, connection error, 429 or 5xx.",
    ),
    click.option(
        "--recheck",
        is_flag=True,
        help="Check every attestation again, not using results remembered from earlier runs "
        "(remembered only for identical inputs, under a key in the user's state directory).",
    ),
    click.option(
        "--require-witnesses",
        type=click.IntRange(0, 50),
        default=0,
        show_default=True,
        help="Fail (log-unwitnessed) unless the log checkpoint checked for each file carries this many "
        "valid cosignatures by pinned witnesses (C2SP tlog-cosignature).",
    ),
    click.option(
        "--witness-key",
        "witness_keys",
        multiple=True,
        help="A witness's verifier key (<name>+<key ID>+<base64>, as `assay log witness-key` prints it) "
        "to count for every index, besides the witnesses pinned in the pins file (repeatable).",
    ),
    click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Say on stderr how the run went (fetches, cache, processes).",
    ),
)

_tofu_option = click.option("--tofu", is_flag=True, help="Record pins for packages without one (never changes a pin).")


def _settings(opts: dict[str, Any], *, tofu: bool = False) -> Settings:
    from assay.verify import session

    return session.settings(
        staging=opts["staging"],
        trust_root_path=opts["trust_root_path"],
        cache_dir=opts["cache_dir"],
        offline=opts["offline"],
        jobs=opts["jobs"],
        timeout=opts["timeout"],
        retries=opts["retries"],
        tofu=tofu,
        strict=opts["strict"],
        recheck=opts["recheck"],
        require_witnesses=opts["require_witnesses"],
        witness_keys=opts["witness_keys"],
    )


# --------------------------------------------------------------------------------------------
# assay verify
# --------------------------------------------------------------------------------------------


@click.command(cls=PassThroughCommand)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A requirements file with --hash pins; files are found on the index by hash.",
)
@click.option("--index-url", help="The simple API URL for files whose input names no index.")
@_tofu_option
@_verification_options
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: a machine-readable document on stdout.",
)
@click.option(
    "--write-lock-identities",
    is_flag=True,
    help="Record the verified identities in the lock (PEP 751 attestation-identities).",
)
@click.pass_context
@_input_errors
def verify(
    ctx: click.Context,
    /,
    inputs: tuple[Path, ...],
    requirements: Path | None,
    index_url: str | None,
    tofu: bool,
    output: str,
    write_lock_identities: bool,
    **opts: Any,
) -> None:
    """Check every file of a lock against the identity pinned for its package.

    \b
    INPUTS is a PEP 751 lock (default ./pylock.toml) or wheel/sdist files; or use
    -r requirements.txt, or `assay verify [options] -- <pip lock arguments>`.
    """
    from assay.verify import locks, report, session

    parsed = session.read_inputs(inputs, requirements, index_url, _passthrough(ctx))
    if write_lock_identities and parsed.lock_path is None:
        raise InputError("--write-lock-identities needs a lock file as the input")
    settings = _settings(opts, tofu=tofu)
    pins = session.load_pins(opts["pins_path"], parsed)
    outcome = session.verify(parsed, pins, settings, verbose=opts["verbose"], progress=output != "json")
    if message := session.record_new_pins(outcome, pins, tofu=tofu):
        click.echo(message, err=True)
    if write_lock_identities and parsed.lock_path is not None:
        changed = locks.write_lock_identities(parsed.lock_path, outcome.passing_identities())
        click.echo(
            f"recorded the attestation identities of {changed} package(s) in {parsed.lock_path}",
            err=True,
        )
    if output == "json":
        click.echo(json.dumps(report.to_json(outcome), indent=2))
    else:
        report.print_table(outcome, report.stdout_console())
    ctx.exit(1 if outcome.failed else 0)


# --------------------------------------------------------------------------------------------
# assay install
# --------------------------------------------------------------------------------------------


@click.command(cls=PassThroughCommand)
@click.argument("pylock", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--index-url",
    help="The simple API URL for packages the lock names no index for (pip lock records none); "
    "default: PIP_INDEX_URL, then the target pip's `pip config get global.index-url`.",
)
@click.option(
    "--python",
    "python_path",
    type=click.Path(path_type=Path),
    help="Install into the environment of this interpreter (or environment directory); "
    "default: $VIRTUAL_ENV, else python3 on PATH. Never assay's own.",
)
@_tofu_option
@_verification_options
@click.pass_context
@_input_errors
def install_command(
    ctx: click.Context,
    /,
    pylock: Path,
    index_url: str | None,
    python_path: Path | None,
    tofu: bool,
    **opts: Any,
) -> None:
    """Verify a lock, then install exactly its verified files.

    \b
    Arguments after `--` go to `pip install`, e.g. `assay install pylock.toml -- --target DIR`.
    Nothing is installed if any file fails verification or does not match the lock.
    """
    from assay.verify import install, interpreters, report, session

    # Before any verification: a run that cannot install anywhere should say so at once.
    target = interpreters.target(python_path)
    plan, parsed = session.install_inputs(pylock, index_url, target)
    settings = _settings(opts, tofu=tofu)
    pins = session.load_pins(opts["pins_path"], parsed)
    outcome = session.verify(parsed, pins, settings, verbose=opts["verbose"])
    if message := session.record_new_pins(outcome, pins, tofu=tofu):
        click.echo(message, err=True)
    report.print_table(outcome, report.stdout_console())
    if outcome.failed:
        click.echo("assay install: verification failed; nothing was installed", err=True)
        ctx.exit(1)
    installer_args = _passthrough(ctx) or []
    where = target.describe()
    if redirected := install.redirected_to(installer_args):
        where = f"{redirected}, with {target.python} (from {target.origin})"
    click.echo(f"assay install: installing {len(plan.to_install)} verified file(s) into {where}", err=True)
    try:
        code = session.install_files(plan, pylock, settings, installer_args, target)
    except install.InstallError as exc:
        click.echo(f"assay install: {exc}", err=True)
        ctx.exit(1)
    if code != 0:
        click.echo(f"assay install: pip install failed (exit {code})", err=True)
        ctx.exit(1)


# --------------------------------------------------------------------------------------------
# assay pins
# --------------------------------------------------------------------------------------------


@click.group()
def pins() -> None:
    """Review and apply changes to publisher pins (.provenance.toml)."""


_pins_input_options = _options(
    click.option(
        "--lock",
        "lock_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The PEP 751 lock (default ./pylock.toml).",
    ),
    click.option(
        "-r",
        "--requirements",
        type=click.Path(path_type=Path, dir_okay=False),
        help="A requirements file with --hash pins, instead of a lock.",
    ),
    click.option("--index-url", help="The simple API URL for files whose input names no index."),
)


def _diff(ctx: click.Context, opts: dict[str, Any]) -> tuple[Inputs, PinSet, list[PinChange]]:
    from assay.verify import changes, session

    lock_path: Path | None = opts.pop("lock_path")
    requirements: Path | None = opts.pop("requirements")
    if lock_path is not None and requirements is not None:
        raise InputError("give --lock or -r, not both")
    inputs = (lock_path,) if lock_path is not None else ()
    parsed = session.read_inputs(inputs, requirements, opts.pop("index_url"), _passthrough(ctx))
    pin_set = session.load_pins(opts["pins_path"], parsed)
    outcome = session.verify(parsed, pin_set, _settings(opts), verbose=opts["verbose"])
    return parsed, pin_set, changes.pin_changes(outcome, pin_set)


@pins.command("diff", cls=PassThroughCommand)
@_pins_input_options
@_verification_options
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
@_input_errors
def pins_diff(ctx: click.Context, /, output: str, **opts: Any) -> None:
    """Show how the pins differ from what the index says now (exit 1 if they do)."""
    from assay.verify.changes import Action

    _parsed, _pin_set, found = _diff(ctx, opts)
    if output == "json":
        click.echo(json.dumps([c.as_json() for c in found], indent=2))
    elif not found:
        click.echo("the pins match what the index says")
    else:
        marks = {Action.ADD: "+", Action.CHANGE: "~", Action.REMOVE: "-", Action.CONFLICT: "!"}
        for change in found:
            click.echo(f"{marks[change.action]} {change.name}: {change.reason}")
        click.echo("apply with `assay pins update NAME...` after reviewing each change", err=True)
    ctx.exit(1 if found else 0)


@pins.command("update", cls=PassThroughCommand)
@click.argument("names", nargs=-1, required=True)
@_pins_input_options
@_verification_options
@click.pass_context
@_input_errors
def pins_update(ctx: click.Context, /, names: tuple[str, ...], **opts: Any) -> None:
    """Set the pins of NAMES to the identity the index says now (see `assay pins diff`)."""
    from assay.verify.changes import apply_changes

    parsed, pin_set, found = _diff(ctx, opts)
    before = pin_set.file.dumps()
    lines = apply_changes(found, names, pin_set, known={f.name for f in parsed.files})
    if pin_set.file.dumps() != before:
        pin_set.file.save()
    for line in lines:
        click.echo(line)
