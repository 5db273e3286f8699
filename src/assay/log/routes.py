"""The log's read-only HTTP face, C2SP tlog-tiles at ``{index}/log/`` (``/log/`` for the
default index, ``/team/log/`` for the index ``team``: each index has its own log).

- ``/log/checkpoint``: the signed checkpoint (``text/plain; charset=utf-8``), revalidated on
  every use (``Cache-Control: no-cache``): it changes as the log grows;
- ``/log/key``: the signer's verifier key (``text/plain``), what ``assay verify --tofu`` pins;
- ``POST /log/cosignature``: a witness submits its cosignature of a checkpoint (issue 13
  item 5, see ``witnesses``); the checkpoint is then served with it;
- ``/log/tile/<L>/<N>[.p/<W>]``: hash tiles; ``/log/tile/entries/<N>[.p/<W>]``: entry bundles
  (``application/octet-stream``). A full tile never changes, so it is cached for a year as
  ``immutable`` (tlog-tiles: full tiles are immutable; a CDN or a static host may serve them);
  a partial one for a minute (a log may drop partial tiles once the full one exists);
- any path but a tile's one canonical spelling, or a tile beyond the tree, is a 404 saying
  why, never cached (it may exist a moment later);
- ``/files/<blob key>.tlog-proof``: the file's receipt (issue 13 item 3), the C2SP tlog-proof
  of its ``upload`` entry against a signed checkpoint, the entry's canonical bytes in the
  proof's ``extra`` line (see ``receipt``).

Everything is built from the database, so every worker answers the same.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from assay.indexes import IndexRef
from assay.log import checkpoint as checkpoints
from assay.log import keys, note, proof, publish, store, tiles, witnesses
from assay.storage.blobs import BlobKeyError, check_key
from assay.storage.models import File, LogEntry, Project
from assay.web.access import open_index_async

if TYPE_CHECKING:
    from assay.config import Settings
    from assay.indexes import Indexes
    from assay.storage.db import Database

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
NO_STORE = "no-store"


class LogService:
    """What the routes need, built once per worker: the signing key, and each index's signer
    (the key under the index's origin as its name, made on first use)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        # Loads (on the very first start: creates) the signing key, so a bad key stops start-up
        # with its message rather than failing the first checkpoint request.
        self.db = db
        self.settings = settings
        self.origin = keys.origin(settings)
        self.signer = keys.signer(settings)
        self._signers: dict[str, note.Ed25519Signer] = {self.signer.name: self.signer}
        self.interval = float(settings.log_checkpoint_interval)

    def signer_of(self, index: IndexRef) -> note.Ed25519Signer:
        name = keys.origin(self.settings, index.name)
        found = self._signers.get(name)
        if found is None:
            found = self._signers[name] = self.signer.renamed(name)
        return found

    def checkpoint(self, index: IndexRef) -> bytes:
        """The index's checkpoint to serve, with the cosignatures witnesses submitted for it."""
        signer = self.signer_of(index)
        signed = publish.latest(self.db, index.id, signer, signer.name, self.interval)
        with self.db.read() as session:
            return witnesses.attach(session, signed, index.id)

    def cosign(self, index: IndexRef, body: bytes) -> list[str]:
        return witnesses.submit(self.db, body, self.signer_of(index).name, index.id)

    def upload_entry(self, index: IndexRef, key: str) -> tuple[int, bytes] | None:
        """The leaf index and canonical bytes of the ``upload`` entry of the file stored at
        blob `key` in `index`, or None (no such file, a quarantined project, no entry yet)."""
        try:
            check_key(key)  # as /files/ does: a NUL would reach PostgreSQL (a 500), ".." no file
        except BlobKeyError:
            return None
        with self.db.read() as session:
            row = session.execute(
                sa.select(File.filename, File.sha256, Project.status)
                .join(Project, File.project_id == Project.id)
                .where(File.index_id == index.id, File.blob_key == key)
            ).one_or_none()
            # PEP 792: a quarantined project's files are not offered, nor their receipts.
            if row is None or row.status == "quarantined":
                return None
            found = session.execute(
                sa.select(LogEntry.seq, LogEntry.data)
                .where(LogEntry.index_id == index.id, LogEntry.kind == "upload", LogEntry.filename == row.filename)
                .order_by(LogEntry.seq.desc())
            ).all()
        for seq, data in found:  # the newest entry for these very bytes
            if json.loads(data).get("sha256") == row.sha256:
                return int(seq), bytes(data)
        return None

    def receipt(self, index: IndexRef, seq: int, entry: bytes) -> bytes | None:
        """The tlog-proof of entry `seq` against the checkpoint served now, or None when that
        checkpoint does not cover it yet (publish.latest honours the checkpoint interval)."""
        signed = self.checkpoint(index)
        size = checkpoints.Checkpoint.parse(note.parse(signed)[0]).size
        if seq >= size:
            return None
        # The stored hashes cover every signed checkpoint (latest integrates before signing).
        with self.db.read() as session:
            return proof.make(seq, store.hash_reader(session, index.id), signed, extra=entry).format()

    def tile(self, index: IndexRef, path: str) -> Response:
        from assay.web.responses import TextError

        try:
            tile, is_entries = tiles.parse_tile_path(path)
        except tiles.TileError as exc:
            return TextError(404, f"Not Found: {exc}", headers={"Cache-Control": NO_STORE})
        db = self.db
        with db.read() as session:
            tree_size = store.size(session, index.id)
            hashed = store.hashed_size(session, index.id)
        if not store.tile_exists(tile, tree_size):
            return TextError(
                404, f"Not Found: the log has {tree_size} entries, {path} is beyond them",
                headers={"Cache-Control": NO_STORE},
            )
        if not is_entries and not store.tile_exists(tile, hashed):
            store.integrate(db, index.id)  # committed entries the stored hashes do not cover yet
        with db.read() as session:
            body = (
                store.read_bundle(session, index.id, tile) if is_entries else store.read_tile(session, index.id, tile)
            )
        return Response(
            body, media_type="application/octet-stream",
            headers={"Cache-Control": IMMUTABLE if tile.full else PARTIAL},
        )


class LogServices(Protocol):
    """What the log's routes ask of the application (``assay.app`` provides it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def log(self) -> LogService: ...


def _service(request: Request) -> tuple[LogServices, LogService]:
    svc: LogServices = request.app.state.services
    return svc, svc.log


async def checkpoint_route(request: Request) -> Response:
    svc, log = _service(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    body = await run_in_threadpool(log.checkpoint, index)
    return Response(body, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def key_route(request: Request) -> Response:
    """``/log/key``: the verifier key (note format) of the checkpoints' signer, so that
    ``assay verify --tofu`` can pin it on first use. Fetching it proves nothing by itself: a
    client trusts it only as a TOFU pin, and a later change is a failure (``log-fork``)."""
    svc, log = _service(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    return Response(log.signer_of(index).verifier_key() + "\n", media_type="text/plain; charset=utf-8")


async def cosignature_route(request: Request) -> Response:
    """``POST /log/cosignature``: the body is the checkpoint's note text and the witness's
    cosignature line(s) (``text/plain``; the log's own signature may be there too, and is
    ignored). 200 with the names of the stored keys; 4xx saying what was wrong."""
    from assay.web.responses import TextError

    svc, log = _service(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    body = await request.body()
    try:
        accepted = await run_in_threadpool(log.cosign, index, body)
    except witnesses.WitnessError as exc:
        return TextError(exc.status, f"cosignature refused: {exc}")
    return Response(
        "".join(f"accepted {name}\n" for name in accepted), media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": NO_STORE},
    )


async def tile_route(request: Request) -> Response:
    svc, log = _service(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    return await run_in_threadpool(log.tile, index, "tile/" + request.path_params["path"])


routes: list[BaseRoute] = [
    Route("/log/checkpoint", checkpoint_route, methods=["GET", "HEAD"]),
    Route("/log/key", key_route, methods=["GET", "HEAD"]),
    Route("/log/cosignature", cosignature_route, methods=["POST"]),
    Route("/log/tile/{path:path}", tile_route, methods=["GET", "HEAD"]),
]
