"""``assay log``: the transparency log's clients other than ``assay verify`` (issue 13):
``witness`` cosigns checkpoints, ``witness-key`` makes or shows the witness's key,
``monitor`` replays the log and reports suspicious changes. No server code is imported.

Exit codes: ``witness`` 0 cosigned (and submitted), 1 refused or failed (the message says
why); ``monitor`` 0 no findings, 1 findings about entries, 3 a finding about the log itself
(bad signature, rollback, fork, unreachable); 2 usage errors for both.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

_STATE = click.option(
    "--state", "state_dir", type=click.Path(path_type=Path, file_okay=False),
    help="The state directory (default: assay/witness or assay/monitor under the user's state dir).",
)
_WITNESS_KEY = click.option(
    "--witness-key", "key_file", type=click.Path(path_type=Path, dir_okay=False),
    help="The witness's private key file (default: witness.key in the state directory).",
)
_TIMEOUT = click.option(
    "--timeout", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
    help="Seconds allowed for each HTTP request, body included.",
)


@click.group()
def log() -> None:
    """Witness or monitor an index's transparency log (C2SP tlog-tiles, tlog-cosignature)."""


def _key_file(state_dir: Path | None, key_file: Path | None) -> Path:
    from assay.logclient import witness

    return key_file or (state_dir or witness.default_state_dir()) / witness.KEY_FILE


@log.command("witness-key")
@click.option("--name", help="Create the key under this name (a schema-less URL naming the witness, "
              "e.g. witness.example.com/w1); without it, show the existing key.")
@_WITNESS_KEY
@_STATE
def witness_key(name: str | None, key_file: Path | None, state_dir: Path | None) -> None:
    """Print the witness's verifier key (what an index admin adds with `assay admin log
    witness add` and a consumer pins), creating the key (mode 0600) with --name."""
    from assay.logclient import witness

    path = _key_file(state_dir, key_file)
    try:
        signer = witness.create_key(path, name) if name else witness.load_key(path)
    except witness.WitnessKeyError as exc:
        raise click.ClickException(str(exc)) from None
    if name:
        click.echo(f"created witness key {path}", err=True)
    click.echo(signer.verifier().verifier_key())


@log.command("witness")
@click.option("--log", "url", required=True, help="The log's URL prefix (where checkpoint and tile/ are; "
              "an index's base URL gets log/ added).")
@click.option("--key", required=True, help="The log's note verifier key, <origin>+<key ID>+<base64> "
              "(what `assay admin log key` prints).")
@_WITNESS_KEY
@_STATE
@click.option("--submit/--no-submit", default=True, show_default=True,
              help="POST the cosignature to the index (<prefix>cosignature); else only print it.")
@_TIMEOUT
def witness_command(url: str, key: str, key_file: Path | None, state_dir: Path | None, submit: bool,
                    timeout: float) -> None:
    """Check the log's checkpoint (signature, consistency with the last one cosigned) and
    cosign it; refuse a bad signature, a rollback or a fork (exit 1, nothing cosigned)."""
    from assay.logclient import remote, witness
    from assay.verify.errors import FetchError
    from assay.verify.fetch import Http
    from assay.verify.logcheck import CheckpointState

    state = state_dir or witness.default_state_dir()
    try:
        signer = witness.load_key(_key_file(state_dir, key_file))
    except witness.WitnessKeyError as exc:
        raise click.ClickException(str(exc)) from None
    with Http(timeout=timeout, retries=2, connections=2) as http:
        try:
            log_ = remote.RemoteLog.open(url, key, http)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--key") from None
        try:
            cosigned = witness.witness(log_, signer, CheckpointState(state))
        except remote.LogProblem as exc:
            raise click.ClickException(f"refused to cosign ({exc.problem.value}): {exc}") from None
        size = cosigned.checkpoint.size
        grew = f" (was {cosigned.previous.size})" if cosigned.previous is not None else " (first checkpoint seen)"
        if not submit:
            click.echo(cosigned.note.decode(), nl=False)
            click.echo(f"cosigned {log_.origin} at size {size}{grew}; not submitted", err=True)
            return
        try:
            witness.submit(log_, cosigned)
        except FetchError as exc:
            raise click.ClickException(f"cosigned size {size}, but the index refused it: {exc}") from None
    click.echo(f"cosigned {log_.origin} at size {size}{grew}; submitted to {log_.prefix}cosignature")


@log.command("monitor")
@click.argument("url")
@click.option("--key", help="The log's note verifier key; default: the one pinned in the state on the first "
              "run (fetched from <prefix>key then: trust on first use).")
@_STATE
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, one per line (JSON Lines).")
@_TIMEOUT
@click.pass_context
def monitor_command(ctx: click.Context, url: str, key: str | None, state_dir: Path | None, as_json: bool,
                    timeout: float) -> None:
    """Replay the log at URL from where the last run stopped and report: a filename logged
    twice with different hashes, a publisher change, lost provenance, a removed file.

    Exit 0 nothing found, 1 findings about entries, 3 a problem with the log itself."""
    from assay.logclient import monitor, remote
    from assay.verify.errors import FetchError
    from assay.verify.fetch import Http

    prefix = remote.log_prefix(url)
    try:
        state = monitor.MonitorState.load(state_dir or monitor.default_state_dir(), prefix)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with Http(timeout=timeout, retries=2, connections=2) as http:
        if key is None:
            key = state.key
        elif state.key is not None and key.strip() != state.key:
            raise click.ClickException(
                f"the state in {state.path} was kept for another log key ({state.key}): "
                "a new key is a new log, give it its own --state"
            )
        if key is None:
            try:
                got = http.get(prefix + "key", accept="text/plain", limit=4096)
            except FetchError as exc:
                raise click.ClickException(f"no --key, and the log's key cannot be fetched: {exc}") from None
            if got.status != 200:
                raise click.ClickException(f"no --key, and {prefix}key answers HTTP {got.status}")
            key = got.body.decode("ascii", "replace").strip()
            click.echo(f"pinned the log key {key} (trust on first use)", err=True)
        try:
            log_ = remote.RemoteLog.open(prefix, key, http)
            found = monitor.run(log_, state)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    for finding in found:
        click.echo(json.dumps(finding.to_json(), sort_keys=True) if as_json else finding.line())
    if not as_json:
        click.echo(f"{log_.origin}: {state.processed} entries replayed, {len(found)} finding(s)", err=True)
    if any(f.finding in monitor.LOG_FINDINGS for f in found):
        ctx.exit(3)
    ctx.exit(1 if found else 0)
