"""Issue 13, item 5: ``assay verify --require-witnesses K``. Against a real ``assay serve``
whose checkpoint two witnesses (``assay log witness``) cosigned: K=2 passes with both pinned
in ``.provenance.toml`` (or given with ``--witness-key``), K=3 fails (``log-unwitnessed``,
exit 1), as does K=1 when no witness key is pinned or the log grew past the cosigned
checkpoint; offline, the cached receipts' own checkpoints (which carry the cosignatures the
index had collected when they were fetched) are what is counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli import main
from tests.support.server import AssayServer, serve_on
from tests.verify.conftest import World
from tests.verify.test_log_checks import ARGS, lock, publish


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp("logwitnesses"), "sqlite", ARGS)


def witnesses(server: AssayServer, tmp: Path, count: int) -> list[str]:
    """``count`` witnesses added to the server, each having cosigned its current checkpoint."""
    with server.client() as http:
        key = http.get("/log/key").text.strip()
    vkeys = []
    for i in range(count):
        state = tmp / f"witness-{i}"
        name = f"w{i}.{tmp.name}.test"
        made = CliRunner().invoke(main, ["log", "witness-key", "--name", name, "--state", str(state)])
        assert made.exit_code == 0, made.output
        vkey = made.stdout.strip()
        server.cli("log", "witness", "add", name, vkey)
        run = CliRunner().invoke(main, ["log", "witness", "--log", f"{server.url}/log/", "--key", key,
                                        "--state", str(state)])
        assert run.exit_code == 0, run.output
        vkeys.append(vkey)
    return vkeys


def pin(world: World, index: str, key: str, vkeys: list[str]) -> None:
    listed = ", ".join(f'"{v}"' for v in vkeys)
    world.pins_path.write_text(f'[log."{index}"]\nkey = "{key}"\nwitnesses = [{listed}]\n')


def test_require_witnesses_passes_with_k_and_fails_with_k_plus_one(
    server: AssayServer, world: World, tmp_path: Path
) -> None:
    index, files = publish(server, world)
    path = lock(world, index, files)
    with server.client() as http:
        key = http.get("/log/key").text.strip()
    vkeys = witnesses(server, tmp_path, 2)
    # Without a pinned witness, any requirement fails, and says why.
    pin(world, index, key, [])
    none = world.verify(str(path), "--require-witnesses", "1")
    assert none.code == 1, none.text
    assert set(none.verdicts.values()) == {"log-unwitnessed"}
    assert "witness key(s) are pinned" in none.file(files[0].filename)["reason"]
    pin(world, index, key, vkeys)
    ok = world.verify(str(path), "--require-witnesses", "2")
    assert ok.code == 0, ok.text
    assert set(ok.verdicts.values()) == {"unattested"}
    # The pins file keeps the witnesses when it is rewritten (it is, by --tofu).
    assert world.verify(str(path), "--tofu", "--require-witnesses", "2").code == 0
    assert all(v in world.pins_path.read_text() for v in vkeys)
    short = world.verify(str(path), "--require-witnesses", "3")
    assert short.code == 1
    assert set(short.verdicts.values()) == {"log-unwitnessed"}
    assert "but 2 witness key(s) are pinned" in short.file(files[0].filename)["reason"]
    # One pinned, the other given on the command line: two.
    pin(world, index, key, vkeys[:1])
    assert world.verify(str(path), "--require-witnesses", "2").code == 1
    assert world.verify(str(path), "--require-witnesses", "2", "--witness-key", vkeys[1]).code == 0
    # A malformed witness key is an input error (exit 2), not a verdict.
    assert world.verify(str(path), "--require-witnesses", "1", "--witness-key", "nonsense").code == 2


def test_a_checkpoint_not_yet_witnessed_fails_and_offline_counts_receipts(
    server: AssayServer, world: World, tmp_path: Path
) -> None:
    index, files = publish(server, world, count=1)
    path = lock(world, index, files)
    with server.client() as http:
        key = http.get("/log/key").text.strip()
    vkeys = witnesses(server, tmp_path, 1)
    pin(world, index, key, vkeys)
    assert world.verify(str(path), "--require-witnesses", "1").code == 0
    # The receipts were fetched after the witness cosigned: their checkpoint carries it, so
    # an offline run counts it from the cache.
    assert world.verify(str(path), "--offline", "--require-witnesses", "1").code == 0
    # The log grows: its new checkpoint is not cosigned yet.
    publish(server, world, count=1)
    grown = world.verify(str(path), "--require-witnesses", "1")
    assert grown.code == 1
    assert set(grown.verdicts.values()) == {"log-unwitnessed"}
    assert "checkpoint carries 0 valid cosignature(s)" in grown.file(files[0].filename)["reason"]
    # That run cached receipts against the new checkpoint: offline, they fall short too.
    offline = world.verify(str(path), "--offline", "--require-witnesses", "1")
    assert offline.code == 1
    assert "offline: the receipt's checkpoint carries 0" in offline.file(files[0].filename)["reason"]
    # A witness run later, it passes again.
    run = CliRunner().invoke(main, ["log", "witness", "--log", f"{server.url}/log/", "--key", key,
                                    "--state", str(tmp_path / "witness-0")])
    assert run.exit_code == 0, run.output
    assert world.verify(str(path), "--require-witnesses", "1").code == 0
