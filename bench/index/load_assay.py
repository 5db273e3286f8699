"""Populate an assay data directory with the generated files, through assay's own upload path.

Each file goes through exactly what ``POST /legacy/`` does after the multipart parsing:
the bytes are written to a staged blob (hashed with sha256, blake2b-256 and md5, fsynced, as
``assay.upload.form`` does), ``assay.upload.service.prepare`` validates the form and the file and
extracts the metadata, the attestation service runs, and ``Uploader.commit`` publishes the
blobs and commits the rows and audit events, authenticated with a real API token of a real
user. Only HTTP and the multipart parser are skipped. ``--jobs`` processes upload disjoint sets
of projects at once, like concurrent uploaders against a server (the SQLite write lock
serializes their commits, as it would in the server).

Usage: python load_assay.py DATA_DIR DISTS_DIR [--projects N] [--jobs 2]
Prints one JSON line: {"files": ..., "seconds": ...}
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import VERSIONS, dist_name, project_name

from assay.accounts.auth import authenticate
from assay.admin.accounts import create_token, create_user
from assay.app.services import Services, build_services
from assay.config import load_settings
from assay.indexes import DEFAULT
from assay.upload.dists import ArchiveLimits
from assay.upload.form import Content, UploadForm
from assay.upload.service import UploadContext, prepare


def files_of(i: int) -> list[tuple[str, str, str]]:
    """(filename, version, filetype) in upload order: per version, the wheel then the sdist."""
    dn = dist_name(i)
    out = []
    for v in VERSIONS:
        out.append((f"{dn}-{v}-py3-none-any.whl", v, "bdist_wheel"))
        out.append((f"{dn}-{v}.tar.gz", v, "sdist"))
    return out


def form_for(svc: Services, path: Path, name: str, version: str, filetype: str) -> UploadForm:
    """The form twine would send, with the content staged the way the server stages it."""
    data = path.read_bytes()
    staged = svc.blobs.stage()
    staged.write(data)
    staged.close()  # flush + fsync, as read_upload_form does
    sha256 = hashlib.sha256(data).hexdigest()
    fields = {
        ":action": ["file_upload"],
        "protocol_version": ["1"],
        "name": [name],
        "version": [version],
        "filetype": [filetype],
        "pyversion": ["py3" if filetype == "bdist_wheel" else "source"],
        "metadata_version": ["2.1"],
        "sha256_digest": [sha256],
        "md5_digest": [hashlib.md5(data, usedforsecurity=False).hexdigest()],
        "blake2_256_digest": [hashlib.blake2b(data, digest_size=32).hexdigest()],
    }
    return UploadForm(
        fields=fields,
        content=Content(
            filename=path.name,
            staged=staged,
            size=len(data),
            sha256=sha256,
            blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        ),
    )


def upload_range(args: tuple[str, str, str, list[int]]) -> int:
    data_dir, dists, token, indices = args
    settings = load_settings({"data_dir": data_dir})
    svc = build_services(settings)
    limits = ArchiveLimits(max_metadata=settings.max_metadata_size)
    header = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    with svc.db.read() as session:
        # The default index (issue 11, part 3: a token belongs to one index).
        who = authenticate(session, header, settings.token_prefix, DEFAULT.id, DEFAULT.name)
    ctx = UploadContext(who, "127.0.0.1")
    n = 0
    for i in indices:
        for filename, version, filetype in files_of(i):
            form = form_for(svc, Path(dists) / filename, project_name(i), version, filetype)
            assert form.content is not None
            try:
                prepared = prepare(form, svc.blobs, limits)
                prepared.provenance = svc.attestations.check(prepared, form, who)
                result = svc.uploader.commit(prepared, ctx)
            finally:
                form.content.staged.discard()
            if not result.created:
                raise SystemExit(f"{filename}: already present (populate a fresh data dir)")
            n += 1
    svc.db.dispose()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("dists")
    ap.add_argument("--projects", type=int, default=10_000)
    ap.add_argument("--only", type=str, default="", help="comma-separated project indices")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    settings = load_settings({"data_dir": args.data_dir})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    svc = build_services(settings)
    svc.db.migrate()
    create_user(svc.db, "bench", actor="admin:bench")
    issued = create_token(
        svc.db,
        username="bench",
        projects=None,
        expires_in=None,
        description="index benchmark loader",
        prefix=settings.token_prefix,
        actor="admin:bench",
    )
    svc.db.dispose()
    token = issued.token

    indices = [int(x) for x in args.only.split(",")] if args.only else list(range(args.projects))
    # Interleaved chunks so every job has work until the end.
    chunks = [indices[k : k + 50] for k in range(0, len(indices), 50)]
    t0 = time.monotonic()
    work = [(args.data_dir, args.dists, token, c) for c in chunks]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            total = 0
            for done in pool.imap_unordered(upload_range, work):
                total += done
                if total % 10_000 < done:
                    print(f"load_assay: {total} files, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    else:
        total = sum(upload_range(w) for w in work)
    seconds = time.monotonic() - t0
    print(json.dumps({"files": total, "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
