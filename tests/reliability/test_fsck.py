"""Issue 6, item 5: ``assay admin fsck`` finds each kind of damage, ``--repair`` quarantines it
(bytes moved, never deleted; rows of files it cannot serve removed with an audit event) and the
index is consistent afterwards. Exit status 1 while problems remain, 0 when clean or repaired.
Both backends: the repair deletes rows and writes audit events in the database."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.reliability.conftest import fsck_clean
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[AssayServer]:
    server = AssayServer(tmp_path / "data", database_url=database_url).start()
    try:
        yield server
    finally:
        server.stop()


def _keys(server: AssayServer, project: str) -> dict[str, tuple[str, str | None]]:
    """filename -> (blob key, metadata blob key) as the index serves them."""
    with server.client() as http:
        page_url = f"{server.url}/simple/{project}/"
        page = http.get(page_url, headers={"Accept": JSON_V1}).json()
    out = {}
    for f in page["files"]:
        key = httpx.URL(urljoin(page_url, f["url"])).path.removeprefix("/files/")
        out[f["filename"]] = (key, key + ".metadata" if f["core-metadata"] else None)
    return out


def _fsck(server: AssayServer, *args: str, process: bool = False) -> tuple[int, dict[str, Any]]:
    """``assay admin fsck --json ARGS``: its exit status and report. In this process (click's
    runner, the same command code) unless ``process``: then as a command of its own."""
    run = server.admin if process else server.cli
    result = run("fsck", "--json", *args, check=False)
    return result.returncode, json.loads(result.stdout)


def _audit(server: AssayServer) -> list[dict[str, Any]]:
    out = server.cli("audit", "--json", "--limit", "100000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_fsck_finds_and_quarantines_every_kind_of_damage(server: AssayServer, tmp_path: Path) -> None:
    token = server.quick_token("fsck-owner")
    dists = [make_wheel(tmp_path, "damaged", f"1.{i}") for i in range(6)] + [make_sdist(tmp_path, "damaged", "2.0")]
    with server.client() as http:
        for dist in dists:
            assert upload(http, dist, token).status_code == 200

    # A clean index: nothing to report, exit 0 (in-process and as a command).
    fsck_clean(server, files=len(dists))
    status, report = _fsck(server, "--grace", "0", process=True)
    assert (status, report["problems"], report["files_checked"]) == (0, [], len(dists))

    keys = _keys(server, "damaged")
    files = server.data_dir / "files"
    names = [d.name for d in dists]
    flipped, truncated, missing, bad_meta, no_meta, intact, sdist = names

    def path(key: str | None) -> Path:
        assert key is not None
        return files / key

    original = {name: path(keys[name][0]).read_bytes() for name in names}
    # The damage is written with private modes, as assay writes (issue 10, item 7): only the
    # damage fsck is meant to find here is reported, not loose modes.
    umask = os.umask(0o077)
    # corrupt-blob: one byte changed, same size.
    data = bytearray(original[flipped])
    data[len(data) // 2] ^= 0xFF
    path(keys[flipped][0]).write_bytes(bytes(data))
    # corrupt-blob: truncated.
    path(keys[truncated][0]).write_bytes(original[truncated][:100])
    # missing-blob.
    path(keys[missing][0]).unlink()
    # corrupt-metadata and missing-metadata (PEP 658 files).
    path(keys[bad_meta][1]).write_bytes(b"Metadata-Version: 2.1\nName: evil\nVersion: 6.6.6\n")
    path(keys[no_meta][1]).unlink()
    # orphan-blob: published, but no row refers to it.
    orphan_key = "aa/bb/" + "c" * 60 + "/orphan-1.0-py3-none-any.whl"
    path(orphan_key).parent.mkdir(parents=True)
    path(orphan_key).write_bytes(b"an orphan")
    # stale-staging: a killed upload's staging file.
    stale = files / ".staging" / "4242@elsewhere@0123456789abcdef.part"
    stale.write_bytes(b"half an upload")
    os.umask(umask)

    status, report = _fsck(server, "--grace", "0", process=True)
    assert status == 1
    found = {(p["kind"], p["filename"] or p["key"]) for p in report["problems"]}
    assert found == {
        ("corrupt-blob", flipped),
        ("corrupt-blob", truncated),
        ("missing-blob", missing),
        ("corrupt-metadata", bad_meta),
        ("missing-metadata", no_meta),
        ("orphan-blob", orphan_key),
        ("stale-staging", stale.name),
    }
    # With the default grace period the young orphan and staging file are excused (they may
    # belong to an upload in flight); the damaged files are not.
    status, report = _fsck(server)
    assert status == 1
    assert {p["kind"] for p in report["problems"]} == {
        "corrupt-blob", "missing-blob", "corrupt-metadata", "missing-metadata"
    }

    # --repair: exit 0, everything moved into one quarantine directory.
    status, report = _fsck(server, "--grace", "0", "--repair")
    assert status == 0
    assert report["repaired"] == 7
    quarantine = Path(report["quarantine"])
    assert quarantine.is_relative_to(server.data_dir / "quarantine")
    moved = {p.relative_to(quarantine).as_posix(): p.read_bytes() for p in quarantine.rglob("*") if p.is_file()}
    # Bytes are moved, never deleted: the damaged blobs as they were, the intact half of each
    # damaged pair, the orphan and the staging file.
    assert moved[keys[flipped][0]] == bytes(data)
    assert moved[keys[truncated][0]] == original[truncated][:100]
    assert moved[keys[bad_meta][0]] == original[bad_meta]
    assert moved[keys[bad_meta][1]].startswith(b"Metadata-Version: 2.1\nName: evil")
    assert moved[keys[no_meta][0]] == original[no_meta]
    assert moved[orphan_key] == b"an orphan"
    assert moved[f".staging/{stale.name}"] == b"half an upload"
    assert keys[missing][0] not in moved
    for name in (flipped, truncated, missing, bad_meta, no_meta):
        for key in keys[name]:
            assert key is None or not path(key).exists()
    assert not stale.exists()
    assert not path(orphan_key).exists()

    # The rows of the five files the index could not serve intact are gone, each with an audit
    # event; the index offers only what it can serve.
    events = [e for e in _audit(server) if e["action"] == "fsck:quarantine"]
    assert sorted(str(e["target"]) for e in events) == sorted([flipped, truncated, missing, bad_meta, no_meta])
    assert _keys(server, "damaged").keys() == {intact, sdist}
    with server.client() as http:
        for name in (flipped, missing):
            assert http.get(f"/files/{keys[name][0]}").status_code == 404
        assert http.get(f"/files/{keys[intact][0]}").content == original[intact]
        # PyPI: a removed file's name is never used again, also after a repair.
        again = upload(http, next(d for d in dists if d.name == flipped), token)
        assert again.status_code == 400
        assert "already been used" in again.text

    # A second run is clean.
    report = fsck_clean(server, files=2)
    assert report["blobs_seen"] == 3  # the intact wheel, its metadata file, the sdist
    status, _ = _fsck(server, "--grace", "0")
    assert status == 0
