"""Issue 13, items 1 and 2: a real server's transparency log, on SQLite and PostgreSQL.

Uploads, yanks, status changes and removals append entries; ``/log/checkpoint`` is a signed
note that opens with the key ``assay admin log key`` prints, under the origin taken from
``--base-url``; the tiles and entry bundles served hash to the checkpoint's root (read back
through assay's checking tile reader and through Go's ``tlog.TileHashReader``); tile paths are
strict; full tiles are cached as immutable; fsck agrees.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assay.admin import accounts, projects
from assay.config import load_settings
from assay.log import checkpoint, keys, merkle, note, publish, tiles
from tests.log.conftest import Oracle, b64, unb64
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, serve_on
from tests.support.upload import upload

BASE_URL = "https://log.example.test/team"
ORIGIN = "log.example.test/team"
ARGS = ("--base-url", BASE_URL, "--log-checkpoint-interval", "0")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp(f"log-{request.param}"), request.param, ARGS)


def verifier(server: AssayServer) -> note.Ed25519Verifier:
    vkey = server.admin("log", "key", "--base-url", BASE_URL).stdout.strip()
    assert vkey.startswith(ORIGIN + "+")
    return note.Ed25519Verifier.from_verifier_key(vkey)


def fetch_checkpoint(http: httpx.Client, v: note.Ed25519Verifier) -> checkpoint.Checkpoint:
    r = http.get("/log/checkpoint")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    cp, _ = checkpoint.open_checkpoint(r.content, [v], origin=ORIGIN)
    return cp


def served_entries(http: httpx.Client, cp: checkpoint.Checkpoint) -> list[dict[str, object]]:
    """Every entry of the checkpoint's tree, read from the served tiles and bundles, each tile
    checked against the checkpoint's root (tiles.tile_hash_reader with root)."""

    def fetch(tile: tiles.Tile) -> bytes:
        r = http.get("/log/" + tile.path())
        assert r.status_code == 200, (tile.path(), r.text)
        return r.content

    read = tiles.tile_hash_reader(cp.size, fetch, cp.root_hash)
    assert merkle.tree_hash(cp.size, read) == cp.root_hash
    out: list[dict[str, object]] = []
    for tile in tiles.tiles_for_size(cp.size):
        if tile.level != 0:
            continue
        bundle = http.get("/log/" + tile.entries_path())
        assert bundle.status_code == 200
        hashes = b"".join(read([merkle.stored_hash_index(0, tile.n * 256 + i) for i in range(tile.width)]))
        out += [json.loads(e) for e in tiles.check_bundle(bundle.content, tile, hashes)]
    return out


def test_uploads_append_entries_under_a_signed_checkpoint(server: AssayServer, unique: str, tmp_path: Path) -> None:
    token = server.quick_token("log-alice")
    v = verifier(server)
    with server.client() as http:
        before = fetch_checkpoint(http, v)
        wheels = [make_wheel(tmp_path, unique, f"1.{i}") for i in range(2)]
        for wheel in wheels:
            assert upload(http, wheel, token).status_code == 200
        # An identical re-upload (200, nothing new) appends nothing; a refused one neither.
        assert upload(http, wheels[0], token).status_code == 200
        assert upload(http, wheels[0], "assay-nonsense").status_code == 403
        cp = fetch_checkpoint(http, v)
        assert cp.size == before.size + 2
        logged = served_entries(http, cp)[before.size :]
    token_id = token.removeprefix("assay-").split("_")[0]
    for entry, wheel in zip(logged, wheels, strict=True):
        assert entry["v"] == 1
        assert entry["kind"] == "upload"
        assert entry["index"] == "default"
        assert entry["filename"] == wheel.name
        assert entry["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert entry["size"] == wheel.stat().st_size
        assert entry["project"] == unique
        assert entry["token"] == token_id
        assert entry["provenance_sha256"] is None
        assert "publisher" not in entry


def test_yank_status_and_removal_append_entries(server: AssayServer, unique: str, tmp_path: Path) -> None:
    token = server.quick_token("log-bob")
    v = verifier(server)
    with server.client() as http:
        wheel = make_wheel(tmp_path, unique, "2.0")
        assert upload(http, wheel, token).status_code == 200
        start = fetch_checkpoint(http, v).size
        server.admin("yank", unique, "2.0", "--reason", "broken")
        server.cli("unyank", unique, "2.0")
        server.cli("project", "status", unique, "deprecated", "--reason", "use another")
        server.cli("remove-file", wheel.name)
        cp = fetch_checkpoint(http, v)
        logged = served_entries(http, cp)[start:]
    assert [e["kind"] for e in logged] == ["yank", "unyank", "status", "remove"]
    assert logged[0] | {"time": None} == {
        "v": 1, "kind": "yank", "index": "default", "time": None, "project": unique, "version": "2.0",
        "reason": "broken",
    }
    assert logged[2]["status"] == "deprecated"
    assert logged[3]["filename"] == wheel.name
    assert logged[3]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    fsck = server.admin("fsck", "--grace", "0", "--json")
    assert json.loads(fsck.stdout)["problems"] == []


def test_full_tiles_are_immutable_and_go_reads_them(server: AssayServer, unique: str, oracle: Oracle) -> None:
    # Grow the log past one full tile through a real writer (status changes, cheap).
    server.quick_user("log-carol")
    accounts.create_project(server.db(), unique, owner="log-carol", actor="admin:tests")
    for i in range(260):
        projects.set_status(server.db(), unique, "active", f"r{i}", actor="admin:tests")
    v = verifier(server)
    with server.client() as http:
        cp = fetch_checkpoint(http, v)
        assert cp.size > 256
        full = http.get("/log/tile/0/000")
        assert full.status_code == 200
        assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert full.headers["content-type"] == "application/octet-stream"
        assert len(full.content) == 256 * 32
        assert http.get("/log/tile/entries/000").headers["cache-control"] == "public, max-age=31536000, immutable"
        width = cp.size % 256
        partial = http.get(f"/log/tile/0/001.p/{width}")
        assert partial.status_code == 200
        assert partial.headers["cache-control"] == "public, max-age=60"
        # Beyond the tree, and every spelling but the canonical one: 404, never cached.
        for path in (f"tile/0/001.p/{width + 1}", "tile/0/002", "tile/1/000", "tile/0/0", "tile/0/x000/000",
                     "tile/00/000", "tile/0/000.p/256", "tile/entries/001", "tile/0/000/"):
            r = http.get("/log/" + path)
            assert r.status_code == 404, path
            assert r.headers["cache-control"] == "no-store", path
        served = {t.path(): b64(http.get("/log/" + t.path()).content) for t in tiles.tiles_for_size(cp.size)}
        raw_cp = http.get("/log/checkpoint").content
        assert served_entries(http, cp)[-1]["reason"] == "r259"
    opened, read = oracle([
        {"op": "open_note", "note": raw_cp.decode(), "vkeys": [v.verifier_key()]},
        {"op": "read_tiles", "size": cp.size, "root": b64(cp.root_hash), "tiles": served,
         "indexes": [0, 255, 256, cp.size - 1]},
    ])
    assert opened["ok"], opened
    assert opened["text"] == cp.text()
    assert read["ok"], read
    assert unb64(read["root"]) == cp.root_hash


def test_checkpoints_are_signed_at_most_once_per_interval(server: AssayServer, unique: str) -> None:
    settings = load_settings({"data_dir": str(server.data_dir), "base_url": BASE_URL}, environ={})
    signer = keys.signer(settings)
    db = server.db()
    first = publish.latest(db, 1, signer, ORIGIN, 0)
    server.quick_user("log-dave")
    accounts.create_project(db, unique, owner="log-dave", actor="admin:tests")
    projects.set_status(db, unique, "archived", None, actor="admin:tests")
    # Within the interval the stored checkpoint is served as is (every worker the same one)...
    assert publish.latest(db, 1, signer, ORIGIN, 3600) == first
    # ...and once due, a new one covers the entry.
    newer = publish.latest(db, 1, signer, ORIGIN, 0)
    cp, _ = checkpoint.open_checkpoint(newer, [signer.verifier()], origin=ORIGIN)
    assert cp.size == checkpoint.Checkpoint.parse(note.parse(first)[0]).size + 1
    # A checkpoint signed by another key (before a rotation) is never served: a new one is.
    other = note.Ed25519Signer.generate(ORIGIN)
    rotated = publish.latest(db, 1, other, ORIGIN, 3600)
    checkpoint.open_checkpoint(rotated, [other.verifier()], origin=ORIGIN)
    restored = publish.latest(db, 1, signer, ORIGIN, 3600)
    checkpoint.open_checkpoint(restored, [signer.verifier()], origin=ORIGIN)


def test_release_and_project_removal_log_each_file(server: AssayServer, unique: str, tmp_path: Path) -> None:
    token = server.quick_token("log-erin")
    v = verifier(server)
    with server.client() as http:
        wheels = [make_wheel(tmp_path, unique, version) for version in ("3.0", "3.1")]
        for wheel in wheels:
            assert upload(http, wheel, token).status_code == 200
        start = fetch_checkpoint(http, v).size
        server.cli("remove-release", unique, "3.0")
        server.cli("project", "remove", unique, "--yes")
        logged = served_entries(http, fetch_checkpoint(http, v))[start:]
    assert [(e["kind"], e["version"], e["filename"]) for e in logged] == [
        ("remove", "3.0", wheels[0].name), ("remove", "3.1", wheels[1].name),
    ]
    fsck = server.admin("fsck", "--grace", "0", "--json")
    assert json.loads(fsck.stdout)["problems"] == []
