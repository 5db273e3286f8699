"""``assay publish``: fetching each uploaded file's transparency-log receipt (issue 13, item 3).

The upload answer names the receipt (``Link: <{file URL}.tlog-proof>; rel="assay-log-receipt"``);
the client fetches it and saves it beside the distribution as ``<dist>.tlog-proof``. Before
saving, it checks what it can without a pinned log key: the receipt parses (C2SP tlog-proof),
its ``extra`` entry is this file's ``upload`` entry (name and SHA-256), and the inclusion proof
leads from that entry to the root the checkpoint states. The checkpoint's signature is NOT
checked: the client has no key to check it with yet (issue 13, item 4), and says so.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from assay import untrusted_json
from assay.log import merkle, note, proof
from assay.log.checkpoint import Checkpoint, CheckpointError
from assay.log.tiles import MAX_ENTRY_SIZE

REL = "assay-log-receipt"
#: The server waits for a covering checkpoint itself; past that it answers 503 + Retry-After.
ATTEMPTS = 3
MAX_DELAY = 10.0
#: A receipt is its entry (at most 65,535 bytes, base64), a proof (at most 63 hash lines) and a
#: checkpoint note (at most 100 signature lines): far below this. A larger answer is refused
#: before it is read whole (an index must not be able to exhaust the client's memory).
MAX_RECEIPT = 4 * MAX_ENTRY_SIZE + 64 * 1024


class ReceiptError(Exception):
    """The receipt could not be fetched or is not this file's; the message says which."""


@dataclass(frozen=True)
class SavedReceipt:
    path: Path
    index: int
    tree_size: int


def receipt_url(response: httpx.Response) -> str | None:
    """The receipt's URL from the upload answer's Link header (RFC 8288), if it names one."""
    link = response.links.get(REL)
    return link.get("url") if link else None


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


def check(data: bytes, filename: str, sha256: str) -> proof.TlogProof:
    """Parse a receipt and check it is `filename`'s upload entry under its checkpoint's root
    (everything but the checkpoint's signature)."""
    try:
        parsed = proof.TlogProof.parse(data)
    except proof.TlogProofError as exc:
        raise ReceiptError(f"the receipt is not a tlog-proof: {exc}") from None
    if parsed.extra is None:
        raise ReceiptError("the receipt carries no log entry (its extra line)")
    try:
        entry = untrusted_json.loads(parsed.extra)  # depth-guarded: never a RecursionError
    except ValueError:
        raise ReceiptError("the receipt's log entry is not JSON") from None
    if not isinstance(entry, dict) or entry.get("kind") != "upload":
        raise ReceiptError("the receipt's log entry is not an upload entry")
    if entry.get("filename") != filename or entry.get("sha256") != sha256:
        raise ReceiptError(f"the receipt's log entry is for {entry.get('filename')!r}, not these bytes of {filename}")
    try:
        cp = Checkpoint.parse(note.parse(parsed.checkpoint)[0])
        merkle.verify_inclusion(merkle.leaf_hash(parsed.extra), parsed.index, cp.size, parsed.hashes, cp.root_hash)
    except (note.NoteError, CheckpointError, merkle.ProofError) as exc:
        raise ReceiptError(f"the receipt's inclusion proof does not hold: {exc}") from None
    return parsed


def _get(client: httpx.Client, url: str, auth: tuple[str, str] | None) -> tuple[httpx.Response, bytes]:
    """GET `url`, reading at most MAX_RECEIPT bytes of the answer."""
    with client.stream("GET", url, auth=auth) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_RECEIPT:
                raise ReceiptError(f"{url} answered more than {MAX_RECEIPT} bytes, larger than any receipt")
    return response, bytes(body)


def fetch(
    client: httpx.Client,
    url: str,
    dist: Path,
    sha256: str,
    *,
    upload_url: str,
    token: str,
    sleep: Callable[[float], None] = time.sleep,
) -> SavedReceipt:
    """Fetch, check and save `dist`'s receipt as ``<dist>.tlog-proof``."""
    # The upload token goes only to the index that issued it (a private index asks for it).
    auth = ("__token__", token) if _same_origin(url, upload_url) else None
    for attempt in range(ATTEMPTS):
        try:
            response, body = _get(client, url, auth)
        except httpx.HTTPError as exc:
            raise ReceiptError(f"fetching {url} failed: {exc}") from None
        if response.status_code != 503 or attempt == ATTEMPTS - 1:
            break
        # RFC 9110 §10.2.3: the server says when the entry's checkpoint will be there.
        try:
            delay = float(response.headers.get("retry-after", "2"))
        except ValueError:
            delay = 2.0
        sleep(min(max(delay, 0.0), MAX_DELAY) if math.isfinite(delay) else MAX_DELAY)
    if response.status_code != 200:
        text = body[:200].decode("utf-8", "replace").strip()
        raise ReceiptError(f"{url} answered HTTP {response.status_code}: {text}")
    parsed = check(body, dist.name, sha256)
    path = dist.with_name(dist.name + proof.SUFFIX)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(body)
    os.replace(tmp, path)
    size = Checkpoint.parse(note.parse(parsed.checkpoint)[0]).size
    return SavedReceipt(path, parsed.index, size)
