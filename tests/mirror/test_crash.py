"""A mirrored file is as crash-safe as an upload: a SIGKILL during the first download leaves
nothing visible, and start-up recovery and fsck know mirrored blobs are owned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import sqlalchemy as sa

from assay.admin import fsck
from assay.storage import recovery
from assay.storage.blobs import HOST
from assay.storage.models import MirrorFile, PendingBlob
from tests.mirror.conftest import Mirror
from tests.mirror.test_engine import _blob, _nothing_kept, _open

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from assay.mirror.policy import empty_policy
    from assay.mirror.service import MirrorService
    from assay.storage.blobs import FilesystemBlobStore
    from assay.storage.db import Database

    url, root, trust, upstream, filename = sys.argv[1:]

    async def main():
        async with MirrorService(Database(url), FilesystemBlobStore(Path(root)), trust_root=trust,
                                 page_ttl=60, max_file_size=10**8) as svc:
            print(await svc.open_file(1, upstream, empty_policy(), filename), flush=True)

    asyncio.run(main())
    """
)


def test_sigkill_during_a_first_download_leaves_nothing_visible(mirror: Mirror) -> None:
    project = mirror.name("killed")
    (name,) = mirror.publish(project, "1.0", kinds=("sdist",))
    entry = mirror.static.files[name]
    entry.content += os.urandom(256 * 1024)  # large enough to be mid-way when stalled
    entry.stall_after = 128 * 1024
    child = subprocess.Popen(
        [
            sys.executable, "-c", _CHILD, mirror.db.url, str(mirror.blobs.root),
            str(mirror.authority.trusted_root_path), mirror.static.simple, name,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        # Mid-download: bytes in a staging file of the child's, nothing published.
        while not any(p.stat().st_size for p in mirror.blobs.staging_dir.iterdir()):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never started downloading"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with mirror.db.read() as session:
        assert session.execute(sa.select(MirrorFile).where(MirrorFile.filename == name)).first() is None
    # Start-up recovery removes the killed process's staging file: nothing is left at all.
    recovery.recover(mirror.db, mirror.blobs)
    _nothing_kept(mirror, name)
    # And the next request downloads it whole.
    entry.stall_after = None
    assert _blob(mirror, _open(mirror, name)) == entry.content


def test_recovery_and_fsck_keep_mirrored_blobs(mirror: Mirror) -> None:
    project = mirror.name("owned")
    (name,) = mirror.publish(project, "1.0")
    opened = _open(mirror, name)
    content = _blob(mirror, opened)
    with mirror.db.read() as session:
        row = session.execute(sa.select(MirrorFile).where(MirrorFile.filename == name)).scalar_one()
        keys = [row.blob_key, row.metadata_blob_key]
    # A journal entry of a dead process naming a key a mirrored file owns (a second worker
    # killed while fetching the same file): recovery clears the entry, keeps the blob.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with mirror.db.write() as session:
        session.add(PendingBlob(key=row.blob_key, host=HOST, pid=dead.pid))
    recovery.recover(mirror.db, mirror.blobs)
    assert _blob(mirror, opened) == content
    report = fsck.check(mirror.db, mirror.blobs, grace=0)
    orphans = {p.key for p in report.problems if p.kind == "orphan-blob"}
    assert not orphans & {k for k in keys if k}
