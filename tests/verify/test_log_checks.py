"""Issue 13, item 4: ``assay verify`` checks the index's own transparency log. Against a real
``assay serve`` (SQLite, checkpoints on every request): --tofu pins the log key served at
``/log/key`` and every file's receipt verifies; a tampered receipt, a substituted file, a
different pinned key and a rolled-back log are failures (``log-mismatch``, ``log-fork``); a
pinned log without a receipt is ``log-missing``; ``--offline`` checks the cached receipts."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.log import checkpoint, note
from assay.verify import logcheck
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, serve_on
from tests.support.upload import upload
from tests.verify.conftest import Published, World

ARGS = ("--log-checkpoint-interval", "0")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp("logchecks"), "sqlite", ARGS)


def publish(server: AssayServer, world: World, count: int = 2) -> tuple[str, list[Published]]:
    """Upload a wheel of each of ``count`` fresh projects; the index URL and the files."""
    token = server.quick_token("log-alice")
    files = []
    with server.client() as http:
        for i in range(count):
            project = world.name("logged")
            wheel = make_wheel(world.dists, project, f"1.{i}")
            assert upload(http, wheel, token).status_code == 200
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            files.append(Published(project, f"1.{i}", wheel.name, sha, wheel, f"{server.url}/files/{wheel.name}"))
    return f"{server.url}/simple/", files


def log_origin(server: AssayServer) -> str:
    """The log's origin: its key's name (C2SP tlog-checkpoint)."""
    with server.client() as http:
        return http.get("/log/key").text.split("+")[0]


def receipts(world: World) -> list[Path]:
    """The receipts in the test's provenance cache."""
    return [p for p in world.cache.rglob("*") if p.is_file() and p.parent.parent.name == "receipts"]


def lock(world: World, index: str, files: list[Published]) -> Path:
    return world.lock(*[[f] for f in files], index=index)


def test_key_endpoint_serves_the_admin_key(server: AssayServer) -> None:
    with server.client() as http:
        served = http.get("/log/key")
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/plain; charset=utf-8"
    # The same key (the admin command, run without the server's port, names another origin).
    assert served.text.strip().split("+")[2] == server.admin("log", "key").stdout.strip().split("+")[2]


def test_tofu_pins_the_log_key_then_passes_then_offline(server: AssayServer, world: World) -> None:
    index, files = publish(server, world)
    path = lock(world, index, files)
    first = world.verify(str(path), "--tofu")
    assert first.code == 0, first.text
    assert set(first.verdicts.values()) == {"unattested"}
    pinned = tomllib.loads(world.pins_path.read_text())["log"][index]["key"]
    assert pinned.split("+")[2] == server.admin("log", "key").stdout.strip().split("+")[2]
    again = world.verify(str(path))
    assert again.code == 0, again.text
    # The state directory holds the checkpoint seen.
    stored = list((world.tmp / "xdg-state" / "assay" / "log").glob("*.checkpoint"))
    assert len(stored) == 1
    offline = world.verify(str(path), "--offline")
    assert offline.code == 0, offline.text
    assert set(offline.verdicts.values()) == {"unattested"}
    # Offline, the receipts come from the cache: without them, a pinned log is log-missing.
    for cached in receipts(world):
        cached.unlink()
    missing = world.verify(str(path), "--offline")
    assert missing.code == 1
    assert set(missing.verdicts.values()) == {"log-missing"}


def test_tampered_receipt_and_substituted_file_are_log_mismatch(server: AssayServer, world: World) -> None:
    index, files = publish(server, world)
    path = lock(world, index, files)
    assert world.verify(str(path), "--tofu").code == 0
    # A cached receipt edited to log other bytes: caught offline (where the cache is used).
    target = next(p for p in receipts(world) if p.name == files[0].sha256)
    receipt = target.read_bytes()
    extra_line = receipt.split(b"\n")[1]
    assert extra_line.startswith(b"extra ")
    entry = note.b64decode(extra_line[6:].decode()).replace(files[0].sha256.encode(), b"0" * 64)
    target.write_bytes(receipt.replace(extra_line, b"extra " + note.b64encode(entry).encode()))
    tampered = world.verify(str(path), "--offline")
    assert tampered.code == 1
    assert tampered.verdicts[files[0].filename] == "log-mismatch"
    assert tampered.verdicts[files[1].filename] == "unattested"
    # The proof itself altered (the entry kept): its inclusion proof no longer verifies.
    target.write_bytes(receipt.replace(b"\nindex ", b"\nindex 1", 1))
    moved = world.verify(str(path), "--offline")
    assert moved.verdicts[files[0].filename] == "log-mismatch", moved.text
    # A sound receipt, but of another file (what a substituted file's would be): the entry
    # names other bytes than the lock's.
    target.write_bytes(receipt)
    other = next(p for p in receipts(world) if p.name == files[1].sha256)
    other.write_bytes(receipt)
    swapped = world.verify(str(path), "--offline")
    assert swapped.verdicts == {files[0].filename: "unattested", files[1].filename: "log-mismatch"}, swapped.text
    assert "sha256" in swapped.file(files[1].filename)["reason"]
    # Online, the receipts are fetched again: sound.
    assert world.verify(str(path)).code == 0


def test_a_different_pinned_key_is_log_fork(server: AssayServer, world: World) -> None:
    index, files = publish(server, world, count=1)
    path = lock(world, index, files)
    origin = log_origin(server)
    other = note.Ed25519Signer.generate(origin).verifier_key()
    world.pins_path.write_text(f'[log."{index}"]\nkey = "{other}"\n')
    run = world.verify(str(path))
    assert run.code == 1
    assert run.verdicts[files[0].filename] == "log-fork", run.text
    assert world.pins_path.read_text().count(other) == 1  # never silently re-pinned
    assert "log-fork" in world.verify(str(path), "--tofu").verdicts.values()


def test_a_rollback_is_log_fork(server: AssayServer, world: World) -> None:
    index, files = publish(server, world, count=1)
    path = lock(world, index, files)
    assert world.verify(str(path), "--tofu").code == 0
    state = logcheck.CheckpointState(world.tmp / "xdg-state" / "assay" / "log")
    origin = log_origin(server)
    seen = state.get(origin)
    assert seen is not None
    # The state remembers a bigger tree than the server now serves: the log was rolled back.
    state.put(checkpoint.Checkpoint(origin, seen.size + 5, seen.root_hash))
    run = world.verify(str(path))
    assert run.code == 1
    assert run.verdicts[files[0].filename] == "log-fork", run.text
    # Same size, another root: a fork.
    state.put(checkpoint.Checkpoint(origin, seen.size, b"\x01" * 32))
    assert world.verify(str(path)).verdicts[files[0].filename] == "log-fork"


def test_a_pinned_log_on_an_index_without_receipts_is_log_missing(world: World) -> None:
    files = world.publish(world.name(), kinds=("wheel",))
    path = world.lock(files)
    world.pins_path.write_text(
        f'[log."{world.index.simple}"]\nkey = "{note.Ed25519Signer.generate("static.test").verifier_key()}"\n'
    )
    run = world.verify(str(path))
    assert run.code == 1
    assert set(run.verdicts.values()) == {"log-missing"}
