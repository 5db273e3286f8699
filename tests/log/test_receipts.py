"""Issue 13, item 3: receipts. The upload answer names the file's log entry and its receipt,
``{file URL}.tlog-proof`` (C2SP tlog-proof, the entry's bytes in its ``extra`` line), which
verifies offline with the key ``assay admin log key`` prints, by assay and by Go's
``tlog.CheckRecord``; a tampered receipt does not; the PEP 691 page points at it; an unknown
file has none. On SQLite and PostgreSQL. (``assay publish`` saving receipts, and the Integrity
API's Link, are tested with real attestations in tests/attestations/test_real_attestations.py.)
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from assay.log import checkpoint, merkle, note, proof
from assay.publishing import receipts
from tests.log.conftest import Oracle, b64
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, serve_on
from tests.support.upload import upload

BASE_URL = "https://receipts.example.test"
ORIGIN = "receipts.example.test"
#: A second's interval: a receipt asked for right after its upload waits for the next checkpoint.
ARGS = ("--base-url", BASE_URL, "--log-checkpoint-interval", "1")
JSON_PAGE = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp(f"receipts-{request.param}"), request.param, ARGS)


def verifier(server: AssayServer) -> note.Ed25519Verifier:
    vkey = server.admin("log", "key", "--base-url", BASE_URL).stdout.strip()
    return note.Ed25519Verifier.from_verifier_key(vkey)


def local(url: str) -> str:
    """The path on the test server of a URL the index made absolute with --base-url."""
    assert url.startswith(BASE_URL + "/"), url
    return url.removeprefix(BASE_URL)


def test_upload_names_its_entry_and_receipt_which_verifies(
    server: AssayServer, unique: str, tmp_path: Path, oracle: Oracle
) -> None:
    token = server.quick_token("receipt-alice")
    wheel = make_wheel(tmp_path, unique, "1.0")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with server.client() as http:
        assert upload(http, make_wheel(tmp_path, unique, "0.9"), token).status_code == 200  # a sibling
        http.get("/log/checkpoint")  # a fresh checkpoint: the receipt below must wait for the next
        answer = upload(http, wheel, token)
        assert answer.status_code == 200, answer.text
        assert answer.text == "OK\n"  # twine and uv read nothing else
        index = int(answer.headers["assay-log-index"])
        url = receipts.receipt_url(answer)
        assert url is not None
        assert url.endswith(f"/{wheel.name}.tlog-proof")
        started = time.monotonic()
        served = http.get(local(url))
        waited = time.monotonic() - started
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "text/plain; charset=utf-8"
        assert served.headers["cache-control"] == "no-cache"
        assert waited < 4, waited  # waited for the next checkpoint (interval 1 s), not for a timeout
        # The file itself is still served at the URL the receipt's is derived from.
        assert http.get(local(url).removesuffix(".tlog-proof")).content == wheel.read_bytes()
        # An identical re-upload appends nothing: no index, but the same receipt.
        again = upload(http, wheel, token)
        assert again.status_code == 200
        assert "assay-log-index" not in again.headers
        assert receipts.receipt_url(again) == url

    receipt = proof.TlogProof.parse(served.content)
    assert receipt.index == index
    assert receipt.extra is not None
    entry = json.loads(receipt.extra)
    assert (entry["kind"], entry["filename"], entry["sha256"]) == ("upload", wheel.name, sha256)
    v = verifier(server)
    cp, _ = receipt.verify(receipt.extra, [v], ORIGIN)
    assert cp.size > index
    receipts.check(served.content, wheel.name, sha256)  # what assay publish checks before saving

    # Tampered: another entry's bytes, a changed proof hash, another index, a forged checkpoint.
    forged_entry = json.dumps({**entry, "sha256": "0" * 64}).encode()
    with pytest.raises(proof.TlogProofError):
        receipt.verify(forged_entry, [v], ORIGIN)
    assert receipt.hashes, "the log has more than one entry here"
    changed = (merkle.leaf_hash(b"x"), *receipt.hashes[1:])
    bad_hashes = proof.TlogProof(index, changed, receipt.checkpoint, receipt.extra)
    with pytest.raises(proof.TlogProofError):
        bad_hashes.verify(receipt.extra, [v], ORIGIN)
    text, _ = note.parse(receipt.checkpoint)
    other = note.Ed25519Signer.generate(ORIGIN)
    forged = proof.TlogProof(index, receipt.hashes, checkpoint.sign(checkpoint.Checkpoint.parse(text), [other]))
    with pytest.raises(proof.TlogProofError):
        forged.verify(receipt.extra, [v], ORIGIN)
    with pytest.raises(receipts.ReceiptError):
        receipts.check(bad_hashes.format(), wheel.name, sha256)
    with pytest.raises(receipts.ReceiptError):
        receipts.check(served.content, wheel.name, "0" * 64)

    # Go's tlog.CheckRecord agrees: the served proof holds, the tampered one does not.
    check = {
        "op": "check_inclusion", "size": cp.size, "index": index, "root": b64(cp.root_hash),
        "leaf": b64(merkle.leaf_hash(receipt.extra)), "proof": [b64(h) for h in receipt.hashes],
    }
    good, bad = oracle([check, {**check, "proof": [b64(h) for h in bad_hashes.hashes]}])
    assert good["ok"], good
    assert not bad["ok"], bad


def test_the_json_page_points_at_each_receipt(server: AssayServer, unique: str, tmp_path: Path) -> None:
    token = server.quick_token("receipt-bob")
    wheel = make_wheel(tmp_path, unique, "2.0")
    with server.client() as http:
        assert upload(http, wheel, token).status_code == 200
        page_url = f"/simple/{unique}/"
        page = http.get(page_url, headers={"Accept": JSON_PAGE})
        (file,) = page.json()["files"]
        # PEP 691: keys with a leading underscore are the index's own; the URL is the file's + suffix.
        assert file["_assay_log_receipt"] == file["url"] + ".tlog-proof"
        got = http.get(urljoin(page_url, file["_assay_log_receipt"]))
    assert got.status_code == 200, got.text
    receipt = proof.TlogProof.parse(got.content)
    assert receipt.extra is not None
    receipt.verify(receipt.extra, [verifier(server)], ORIGIN)
    assert json.loads(receipt.extra)["filename"] == wheel.name
    # PEP 792: a quarantined project's files are not offered, nor their receipts.
    server.cli("project", "status", unique, "quarantined", "--reason", "under review")
    with server.client() as http:
        assert http.get(urljoin(page_url, file["_assay_log_receipt"])).status_code == 404


def test_an_unknown_file_has_no_receipt(server: AssayServer) -> None:
    with server.client() as http:
        missing = http.get("/files/ab/cd/" + "e" * 60 + "/nothing-1.0-py3-none-any.whl.tlog-proof")
        assert missing.status_code == 404
        assert "No such file" in missing.text
        assert missing.headers["cache-control"] == "no-store"
        assert http.get("/files/x.tlog-proof").status_code == 404
        # A NUL reaches PostgreSQL as a query parameter unless refused first (a 500 there).
        assert http.get("/files/ab/a%00b.whl.tlog-proof").status_code == 404
        assert http.get("/files/../x.whl.tlog-proof").status_code == 404


def test_a_receipt_not_yet_covered_answers_503_with_retry_after(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # An interval longer than the server waits: the entry's checkpoint is not there in time.
    s = AssayServer(tmp_path_factory.mktemp("receipts-slow"), args=("--log-checkpoint-interval", "3600")).start()
    try:
        token = s.quick_token("receipt-carol")
        wheel = make_wheel(tmp_path, "slow-receipt", "1.0")
        with s.client() as http:
            assert http.get("/log/checkpoint").status_code == 200  # fresh for an hour
            answer = upload(http, wheel, token)
            url = receipts.receipt_url(answer)
            assert url is not None
            late = http.get(httpx.URL(url).path)
    finally:
        s.stop()
    assert late.status_code == 503, late.text
    assert late.headers["retry-after"] == "3600"
    assert "not covered by a signed checkpoint yet" in late.text


class _HostileReceipts(http.server.BaseHTTPRequestHandler):
    """An index answering receipts meant to crash or exhaust a client."""

    def do_GET(self) -> None:
        if self.path == "/deep.tlog-proof":
            extra = b"[" * 100_000 + b"]" * 100_000
            body = proof.TlogProof(0, (), b"x\n", extra).format()
        else:  # endless: 64 MiB of hash lines
            body = proof.HEADER.encode() + b"\nindex 0\n" + (b"A" * 43 + b"=\n") * (1 << 20)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_assay_publish_refuses_hostile_receipts_cleanly(tmp_path: Path) -> None:
    # A deeply nested entry was a RecursionError (a traceback), a huge receipt was read whole
    # into memory: both are now a ReceiptError, which assay publish turns into a warning.
    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileReceipts)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{hostile.server_address[1]}"
    dist = tmp_path / "x-1.0-py3-none-any.whl"
    dist.write_bytes(b"x")
    try:
        with httpx.Client() as client:
            for name, message in (("deep", "not JSON"), ("huge", "larger than")):
                with pytest.raises(receipts.ReceiptError, match=message):
                    receipts.fetch(client, f"{origin}/{name}.tlog-proof", dist, "0" * 64,
                                   upload_url=origin + "/legacy/", token="t")
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert not list(tmp_path.glob("*.tlog-proof"))
