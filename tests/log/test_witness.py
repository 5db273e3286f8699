"""Issue 13, item 5: witnesses. ``assay log witness`` checks a real ``assay serve``'s checkpoint
and cosigns it (C2SP tlog-cosignature, cosignature/v1), twice as the log grows; the index
accepts the cosignature only from a witness key its admin added, and serves it with its
checkpoint; the witness refuses a bad signature, a rollback and a fork (a static log signed
with the index's own key but holding other entries); the server refuses malformed and
unknown-key submissions with a 4xx that says why. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assay.cli import main
from assay.log import checkpoint, cosignature, note
from assay.log.keys import _parse as parse_log_key
from assay.logclient import witness
from tests.log.conftest import Oracle
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, serve_on
from tests.support.static_log import StaticLog
from tests.support.upload import upload

ARGS = ("--log-checkpoint-interval", "0")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp(f"witness-{request.param}"), request.param, ARGS)


def assay_log(*args: str) -> Result:
    return CliRunner().invoke(main, ["log", *args], catch_exceptions=False)


def log_key(server: AssayServer) -> str:
    with server.client() as http:
        return http.get("/log/key").text.strip()


def make_witness(server: AssayServer, tmp: Path, name: str, *, add: bool = True) -> tuple[Path, str]:
    """A witness state dir with a fresh key, added to the server's witnesses; its verifier key."""
    state = tmp / name.replace("/", "_")
    made = assay_log("witness-key", "--name", name, "--state", str(state))
    assert made.exit_code == 0, made.output
    vkey = made.stdout.strip()
    assert stat.S_IMODE((state / "witness.key").stat().st_mode) == 0o600
    if add:
        assert "added" in server.cli("log", "witness", "add", name.replace("/", "-"), vkey).stdout
    return state, vkey


def cosign(server: AssayServer, state: Path, *extra: str, key: str | None = None) -> Result:
    return assay_log("witness", "--log", f"{server.url}/log/", "--key", key or log_key(server),
                     "--state", str(state), *extra)


def grow(server: AssayServer, tmp: Path, name: str) -> None:
    token = server.quick_token("witness-alice")
    with server.client() as http:
        assert upload(http, make_wheel(tmp, name, "1.0"), token).status_code == 200


def served(server: AssayServer) -> tuple[checkpoint.Checkpoint, bytes]:
    with server.client() as http:
        body = http.get("/log/checkpoint").content
    verifier = note.Ed25519Verifier.from_verifier_key(log_key(server))
    return checkpoint.open_checkpoint(body, [verifier], verifier.name)[0], body


def test_witness_cosigns_a_growing_log_twice(server: AssayServer, tmp_path: Path) -> None:
    grow(server, tmp_path, "witnessed-one")
    state, vkey = make_witness(server, tmp_path, "w1.test/witness")
    first = cosign(server, state)
    assert first.exit_code == 0, first.output
    assert "first checkpoint seen" in first.stdout
    size, body = served(server)
    verifier = cosignature.CosignatureVerifier.from_verifier_key(vkey)
    # The served checkpoint carries the log's signature and the witness's cosignature: both open.
    opened = note.open_note(body, [verifier, note.Ed25519Verifier.from_verifier_key(log_key(server))])
    assert {s.name for s in opened.verified} == {verifier.name, size.origin}
    # The log grows; the witness proves consistency from what it cosigned and cosigns again.
    grow(server, tmp_path, "witnessed-two")
    second = cosign(server, state)
    assert second.exit_code == 0, second.output
    assert f"(was {size.size})" in second.stdout
    bigger, body2 = served(server)
    assert bigger.size > size.size
    assert note.open_note(body2, [verifier]).verified[0].name == verifier.name
    listed = server.cli("log", "witness", "list").stdout
    assert vkey in listed


def test_server_refuses_unknown_keys_and_malformed_cosignatures(server: AssayServer, tmp_path: Path) -> None:
    grow(server, tmp_path, "witnessed-three")
    known, _ = make_witness(server, tmp_path, "w2.test/known")
    stranger, _ = make_witness(server, tmp_path, "w2.test/stranger", add=False)
    current, _ = served(server)
    with server.client() as http:
        def post(body: bytes) -> tuple[int, str]:
            answer = http.post("/log/cosignature", content=body, headers={"Content-Type": "text/plain"})
            return answer.status_code, answer.text

        code, text = post(b"not a note")
        assert code == 400
        assert "signed-note" in text
        unknown = note.sign(current.text(), [witness.load_key(stranger / "witness.key")])
        code, text = post(unknown)
        assert code == 403
        assert "no signature by a witness this index accepts" in text
        good = note.sign(current.text(), [witness.load_key(known / "witness.key")])
        line = good.split(b"\n")[-2]
        raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
        raw[-1] ^= 1  # a flipped bit in the Ed25519 signature
        forged = good.replace(line, line.rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(raw)))
        code, text = post(forged)
        assert code == 422
        assert "does not verify" in text
        # A sound cosignature of a checkpoint this log never signed (another root).
        other = checkpoint.Checkpoint(current.origin, current.size, b"\x07" * 32)
        code, text = post(note.sign(other.text(), [witness.load_key(known / "witness.key")]))
        assert code == 422
        assert "signed no checkpoint" in text
        code, text = post(note.sign(checkpoint.Checkpoint("elsewhere.test", 1, b"\x07" * 32).text(),
                                    [witness.load_key(known / "witness.key")]))
        assert code == 400
        assert "elsewhere.test" in text
        # Nothing refused was stored: the checkpoint carries no line of these keys.
        assert b"w2.test/stranger" not in http.get("/log/checkpoint").content
        assert b"w2.test/known" not in http.get("/log/checkpoint").content
        # The sound one is accepted and served; removing the witness stops serving it.
        assert post(good) == (200, "accepted w2.test/known\n")
        assert b"w2.test/known" in http.get("/log/checkpoint").content
        server.cli("log", "witness", "remove", "w2.test-known")
        assert b"w2.test/known" not in http.get("/log/checkpoint").content


def test_witness_refuses_a_bad_signature(server: AssayServer, tmp_path: Path) -> None:
    state, _ = make_witness(server, tmp_path, "w3.test/witness")
    impostor = note.Ed25519Signer.generate(log_key(server).split("+")[0]).verifier_key()
    refused = cosign(server, state, key=impostor)
    assert refused.exit_code == 1
    assert "refused to cosign (log-signature)" in refused.output
    assert not list(state.glob("*.checkpoint"))  # nothing kept, nothing cosigned


def test_witness_refuses_a_fork_and_a_rollback(server: AssayServer, tmp_path: Path) -> None:
    """A log signed with the index's own key (stolen, or the index lying) that serves other
    entries than the index: the witness that cosigned the index's tree refuses it."""
    grow(server, tmp_path, "witnessed-four")
    state, _ = make_witness(server, tmp_path, "w4.test/witness")
    key = log_key(server)
    assert cosign(server, state).exit_code == 0
    seen, _ = served(server)
    private = parse_log_key(Path("signing.key"), (server.data_dir / "log" / "signing.key").read_bytes())
    fake = StaticLog(note.Ed25519Signer(seen.origin, private)).serve()
    try:
        def run() -> Result:
            return assay_log("witness", "--log", fake.url, "--key", key, "--state", str(state), "--no-submit")

        fake.publish([b"forked entry %d" % i for i in range(seen.size + 3)])  # bigger, other entries
        fork = run()
        assert fork.exit_code == 1, fork.output
        assert "refused to cosign (log-fork)" in fork.output
        fake.publish([b"forked entry %d" % i for i in range(seen.size)])  # same size, other root
        same = run()
        assert same.exit_code == 1
        assert "log-fork" in same.output
        fake.publish([b"x"] * (seen.size - 1))  # smaller
        rollback = run()
        assert rollback.exit_code == 1
        assert "refused to cosign (log-rollback)" in rollback.output
        assert not fake.posted
        # The witness still stands by the index's tree.
        assert cosign(server, state).exit_code == 0
    finally:
        fake.stop()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    made = assay_log("witness-key", "--name", "w5.test/w", "--state", str(tmp_path))
    assert made.exit_code == 0
    os.chmod(tmp_path / "witness.key", 0o644)
    shown = assay_log("witness-key", "--state", str(tmp_path))
    assert shown.exit_code == 1
    assert "chmod 600" in shown.output


def test_go_opens_the_served_checkpoint_with_its_cosignatures(
    server: AssayServer, tmp_path: Path, oracle: Oracle
) -> None:
    """The reference (Go's sumdb/note, with the oracle's C2SP cosignature/v1 verifier) opens the
    checkpoint the index serves after two witnesses ran: the log's signature and both lines."""
    grow(server, tmp_path, "witnessed-five")
    states = [make_witness(server, tmp_path, f"w6.test/{n}") for n in ("a", "b")]
    for state, _ in states:
        assert cosign(server, state).exit_code == 0
    _, body = served(server)
    key = log_key(server)
    both, without = oracle([
        {"op": "open_note", "note": body.decode(), "vkeys": [key], "cosigner_vkeys": [v for _, v in states]},
        {"op": "open_note", "note": body.decode().replace("\n", "\n\n", 1), "vkeys": [key],
         "cosigner_vkeys": [v for _, v in states]},
    ])
    assert both["ok"], both
    assert both["verified"] == ["+".join(k.split("+")[:2]) for k in (key, *(v for _, v in states))]
    assert not without["ok"]  # the oracle says no to an altered note
