"""Issue 6, item 1: crash safety at scale. The server is SIGKILLed at a random moment while
clients upload, restarted, and killed again, ASSAY_RELIABILITY_ITERATIONS times per backend
(CI: 5; docs/reliability.md has the long run). Two kinds of upload run side by side: API-token
uploads, and Trusted Publishing uploads (an OIDC token exchanged at /_/oidc/mint-token, then the
file sent with a PEP 740 attestation from the local Sigstore authority).

After every restart, before any new upload, ``fsck --grace 0`` reports nothing: start-up
recovery alone has removed what the kill left (journaled blobs without rows, staging files).
At the end: every upload the client saw succeed is fully served (bytes, sha256, PEP 658
metadata file and its hash, and for Trusted Publishing uploads the provenance with the very
attestation sent and the publisher), every upload cut off by a kill is either all there or not
there at all, and nothing else is on disk.

(tests/index/test_upload_atomicity.py::test_sigkill_during_uploads_then_restart is the fixed,
API-token-only version of this proof.)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx

from tests.reliability.conftest import ITERATIONS, fsck_clean
from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
REPO = "acme/crash"
PLAIN_THREADS = 2


@dataclass
class Attempt:
    path: Path
    status: int | None  # None: no answer (the server died)
    attestation: dict | None = None  # type: ignore[type-arg]


@dataclass
class Run:
    """What the clients of one server life saw."""

    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)


def _loop(stop: threading.Event, step: Callable[[int], bool]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        if not step(n):
            return


def _plain_uploader(url: str, token: str, workdir: Path, tag: str, run: Run, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:

        def step(n: int) -> bool:
            size = random.randint(10_000, 1_000_000)
            wheel = make_wheel(workdir, "crash-plain", f"{tag}.{n}", extra_files={"crash_plain/blob": os.urandom(size)})
            try:
                r = upload(http, wheel, token)
            except httpx.HTTPError:
                run.add(Attempt(wheel, None))
                return False
            run.add(Attempt(wheel, r.status_code))
            return True

        _loop(stop, step)


def _tp_uploader(
    url: str, idp: OIDCProvider, sigstore: LocalSigstore, workdir: Path, tag: str, run: Run, stop: threading.Event
) -> None:
    identity = CertIdentity.github(REPO, "release.yml")
    claims = {**github_claims(REPO, "release.yml"), "iss": GITHUB_ISSUER}
    with httpx.Client(base_url=url, timeout=30) as http:

        def step(n: int) -> bool:
            size = random.randint(10_000, 500_000)
            wheel = make_wheel(workdir, "crash-tp", f"{tag}.{n}", extra_files={"crash_tp/blob": os.urandom(size)})
            attestation = json.loads(sigstore.attest_file(wheel, identity).model_dump_json())
            try:
                minted = http.post("/_/oidc/mint-token", json={"token": idp.token("assay", claims)})
                assert minted.status_code == 200, minted.text
                r = upload(http, wheel, minted.json()["token"], attestations=json.dumps([attestation]))
            except httpx.HTTPError:
                run.add(Attempt(wheel, None, attestation))
                return False
            run.add(Attempt(wheel, r.status_code, attestation))
            return True

        _loop(stop, step)


def _check_served(server: AssayServer, project: str, attempts: list[Attempt]) -> set[str]:
    """Every listed file is whole; returns the blob keys the index serves."""
    accepted = {a.path.name for a in attempts if a.status == 200}
    cut_off = {a.path.name for a in attempts if a.status is None}
    by_name = {a.path.name: a for a in attempts}
    keys: set[str] = set()
    with server.client() as http:
        page_url = f"{server.url}/simple/{project}/"
        page = http.get(page_url, headers={"Accept": JSON_V1})
        listed = {f["filename"]: f for f in page.json()["files"]} if page.status_code == 200 else {}
        # Every upload answered 200 is there; an upload cut off by a kill may be (committed just
        # before it); nothing else is.
        assert accepted <= set(listed)
        assert set(listed) <= accepted | cut_off
        for filename, entry in listed.items():
            attempt = by_name[filename]
            url = urljoin(page_url, entry["url"])
            key = httpx.URL(url).path.removeprefix("/files/")
            keys |= {key, key + ".metadata"}
            body = http.get(url).content
            assert body == attempt.path.read_bytes(), filename
            assert entry["hashes"]["sha256"] == hashlib.sha256(body).hexdigest()
            meta = http.get(url + ".metadata").content
            version = filename.split("-")[1]
            with zipfile.ZipFile(attempt.path) as zf:
                assert meta == zf.read(f"{project.replace('-', '_')}-{version}.dist-info/METADATA")
            assert entry["core-metadata"] == {"sha256": hashlib.sha256(meta).hexdigest()}
            if attempt.attestation is None:
                assert entry["provenance"] is None
                continue
            # PEP 740: the provenance is there with the file, complete: the attestation sent and
            # the publisher that sent it.
            assert entry["provenance"] is not None, filename
            response = http.get(entry["provenance"])
            assert response.status_code == 200, (filename, response.text)
            (bundle,) = response.json()["attestation_bundles"]
            assert bundle["publisher"]["kind"] == "GitHub"
            assert bundle["publisher"]["repository"] == REPO
            assert bundle["attestations"] == [attempt.attestation]
    return keys


def test_sigkill_during_uploads_and_trusted_publishing(tmp_path: Path, database_url: str | None) -> None:
    sigstore = LocalSigstore(tmp_path / "sigstore")
    idp = OIDCProvider()  # signs tokens only; the index reads its keys from the JWKS file
    server = AssayServer(
        tmp_path / "data",
        database_url=database_url,
        args=["--sigstore-trust-root", str(sigstore.trusted_root_path)],
    )
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    attempts: list[Attempt] = []
    token = ""
    try:
        for i in range(ITERATIONS):
            server.start()
            # Start-up recovery has cleaned up after the previous kill: nothing to report.
            fsck_clean(server)
            if not token:
                token = server.quick_token("crasher")
                server.cli("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
                server.quick_user("owner")
                server.cli("project", "create", "crash-tp", "--owner", "owner")
                server.cli(
                    "publisher", "add", "github", "--project", "crash-tp",
                    "--repository", REPO, "--workflow", "release.yml",
                )
            workdir = tmp_path / f"iter{i}"
            workdir.mkdir()
            run = Run()
            stop = threading.Event()
            threads = [
                threading.Thread(target=_plain_uploader, args=(server.url, token, workdir, f"{i}.{t}", run, stop))
                for t in range(PLAIN_THREADS)
            ]
            threads.append(
                threading.Thread(target=_tp_uploader, args=(server.url, idp, sigstore, workdir, f"{i}", run, stop))
            )
            for t in threads:
                t.start()
            if i % 2:
                # Every other life runs until a Trusted Publishing upload has been answered, so
                # kills land in steady state too, not only while the first one is warming up
                # (loading the trust root, reading the issuer's keys).
                deadline = time.monotonic() + 20
                while not any(a.attestation for a in run.attempts) and time.monotonic() < deadline:
                    time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 1.5))
            server.kill()
            stop.set()
            for t in threads:
                t.join(60)
            attempts += run.attempts

        server.start()
        fsck_clean(server)
        refused = [(a.path.name, a.status) for a in attempts if a.status not in (200, None)]
        assert not refused
        assert any(a.status == 200 and a.attestation for a in attempts), "no Trusted Publishing upload completed"
        assert any(a.status is None for a in attempts), "no kill landed during an upload"
        keys = _check_served(server, "crash-plain", [a for a in attempts if a.attestation is None])
        keys |= _check_served(server, "crash-tp", [a for a in attempts if a.attestation is not None])
        # Nothing else on disk: no orphan blob, no staging file.
        assert set(server.stored_files()) == keys
        fsck_clean(server, files=len(keys) // 2)
        # And the index takes uploads normally after all those crashes.
        with server.client() as http:
            assert upload(http, make_wheel(tmp_path, "crash-plain", "999"), token).status_code == 200
        tp = [a for a in attempts if a.attestation is not None]
        print(
            f"\nsurvived {ITERATIONS} kills: {len(attempts)} uploads tried ({len(tp)} with Trusted Publishing), "
            f"{sum(a.status == 200 for a in attempts)} accepted ({sum(a.status == 200 for a in tp)}), "
            f"{sum(a.status is None for a in attempts)} cut off ({sum(a.status is None for a in tp)})"
        )
    finally:
        server.stop()
