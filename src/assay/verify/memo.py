"""Check results remembered between runs, authenticated with a key kept outside the cache.

Checking a provenance object (``assay.verify.provenance.check_provenance``) is a pure function
of its inputs: the provenance bytes, the file's name and sha256 (from the lock), the identities
its pin names, the trust root, and the code doing the checking. Its cost is sigstore-python's
(about 2.5 ms of CPU per attestation, and half a second to import sigstore at all), so a run
whose inputs are all unchanged since an earlier run (the common case: the same lock, verified
again in CI or before every install) repeats work whose answer it already had.

The memo stores that answer, for sound checks only (a failure is always checked again), under
a name derived from every one of those inputs:

* the provenance body's sha256 (a changed or re-fetched provenance is a different input),
* the file's name and sha256 as the input pins them,
* the identities the worker compared the certificates with (a changed pin misses),
* the trust root's sha256 (``--staging``, ``--trust-root`` or a new embedded root misses),
* the checking code: the size and modification time of the modules that check (assay's, and
  sigstore's, pypi-attestations' and cryptography's packages), so an upgrade misses.

What makes this safe where caching verdicts naively would not be: the provenance cache next to
it is untrusted input (anyone who can restore a CI cache can write it), and an entry here is
taken only if it carries an HMAC-SHA256, over the inputs above and the stored result, under a
per-user key that lives in the user's *state* directory (``$XDG_STATE_HOME/assay`` on Linux),
never in the cache directory, created with mode 0600 and refused if anyone else can read or
write it. A cache directory copied from elsewhere (another branch's CI cache, another machine)
therefore has no valid entries: its results are ignored and every file is checked in full. An
ephemeral CI runner gets a new key every run, so there it is checking as before.
``--recheck`` ignores the memo (and refreshes it).

The identity comparison itself is part of the remembered result, so the pins are still applied
to every file by the verdicts: a changed pin is a different input and is checked in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from assay.attestations.trust import TrustRoot
from assay.verify.cache import DiskCache
from assay.verify.checks import ProvenanceCheck
from assay.verify.pins import Matcher

_FORMAT = "assay-verify-memo-1"
_KEY_BYTES = 32

#: Third-party packages whose code decides a check (their installed files are fingerprinted).
_LIBRARIES = ("sigstore", "sigstore_models", "pypi_attestations", "cryptography", "rfc8785")
#: assay's own modules that decide a check, relative to the ``assay`` package.
_OWN_MODULES = (
    "attestations/trust.py",
    "attestations/verify.py",
    "identities/patterns.py",
    "publishers/*.py",
    "verify/checks.py",
    "verify/memo.py",
    "verify/pins.py",
    "verify/provenance.py",
)


class MemoUnavailable(Exception):
    """The key cannot be used; the message says why (the run checks everything in full).
    ``insecure``: a key exists that others could have read or replaced (worth a warning)."""

    def __init__(self, message: str, *, insecure: bool = False) -> None:
        super().__init__(message)
        self.insecure = insecure


def default_key_path() -> Path:
    """``assay/verify-memo.key`` under the user's state directory (not the cache directory)."""
    return Path(platformdirs.user_state_dir("assay", appauthor=False)) / "verify-memo.key"


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise MemoUnavailable(f"{path} belongs to another user", insecure=True)
        # (On Windows the mode bits say nothing; the profile directory's ACL protects the key.)
        if os.name != "nt" and info.st_mode & 0o077:
            raise MemoUnavailable(
                f"{path} is readable or writable by other users (mode {info.st_mode & 0o777:o})", insecure=True
            )
        data = os.read(fd, 4 * _KEY_BYTES)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(data.decode().strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise MemoUnavailable(f"{path} does not hold a key", insecure=True)
    return key


def load_key(path: Path) -> bytes:
    """The key at ``path``, created on first use; raises ``MemoUnavailable``."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MemoUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
        try:
            os.write(fd, secrets.token_hex(_KEY_BYTES).encode() + b"\n")
            os.fsync(fd)
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # a key another run created meanwhile stays
                os.link(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return _read_key(path)
    except OSError as exc:
        raise MemoUnavailable(f"cannot create {path}: {exc.strerror or exc}") from None


def code_fingerprint() -> list[object]:
    """What identifies the installed checking code, without importing it (sigstore takes half
    a second to import): each module's or package's file size and modification time."""
    files: list[str] = []
    for name in _LIBRARIES:
        spec = importlib.util.find_spec(name)
        files.append(spec.origin if spec is not None and spec.origin else f"<no {name}>")
    own = Path(__file__).resolve().parent.parent
    for module in _OWN_MODULES:
        # A package's every module (a new publisher kind is one more file), in a stable order.
        files.extend(sorted(str(p) for p in own.glob(module)) if "*" in module else [str(own / module)])
    stamps: list[object] = []
    for file in files:
        try:
            info = os.stat(file)
            stamps.append([file, info.st_size, info.st_mtime_ns])
        except OSError:
            stamps.append([file, None])
    return stamps


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class CheckMemo:
    """Remembered sound checks of one run's trust root, in ``cache``'s directory."""

    def __init__(self, cache: DiskCache, key: bytes, trust: TrustRoot) -> None:
        self.cache = cache
        self._key = key
        self._context = _canonical([_FORMAT, code_fingerprint(), trust.digest])
        self._matchers: dict[Matcher, bytes] = {}
        #: Answers already given in this run (the runner asks before and after fetching, with
        #: the same body object when the provenance did not change: its hash is computed once).
        self._seen: dict[tuple[bytes, str, str, tuple[Matcher, ...]], ProvenanceCheck | None] = {}

    def _matcher(self, matcher: Matcher) -> bytes:
        if (known := self._matchers.get(matcher)) is None:
            known = self._matchers[matcher] = _canonical([type(matcher).__name__, matcher.to_publisher()])
        return known

    def _inputs(self, body: bytes, filename: str, sha256: str, expected: Sequence[Matcher]) -> bytes:
        file = _canonical([filename, sha256.lower(), hashlib.sha256(body).hexdigest()])
        return b"\n".join([self._context, file, *(self._matcher(m) for m in expected)])

    def _mac(self, label: bytes, data: bytes) -> str:
        return hmac.new(self._key, label + b"\0" + data, hashlib.sha256).hexdigest()

    def get(self, body: bytes, *, filename: str, sha256: str, expected: Sequence[Matcher]) -> ProvenanceCheck | None:
        """The remembered result of checking these inputs, or None."""
        seen = (body, filename, sha256, tuple(expected))
        if seen in self._seen:
            return self._seen[seen]
        inputs = self._inputs(body, filename, sha256, expected)
        found = None
        stored = self.cache.check_result(self._mac(b"name", inputs))
        if stored is not None:
            mac, _, payload = stored.partition(b"\n")
            if hmac.compare_digest(mac, self._mac(b"entry", inputs + b"\0" + payload).encode()):
                try:
                    found = ProvenanceCheck.from_json(json.loads(payload))
                except ValueError:
                    found = None
        self._seen[seen] = found
        return found

    def put(
        self,
        body: bytes,
        *,
        filename: str,
        sha256: str,
        expected: Sequence[Matcher],
        check: ProvenanceCheck,
    ) -> None:
        """Remember ``check`` if it is sound (failures are always checked again)."""
        if not check.sound:
            return
        inputs = self._inputs(body, filename, sha256, expected)
        payload = _canonical(check.to_json())
        mac = self._mac(b"entry", inputs + b"\0" + payload).encode()
        self.cache.store_check_result(self._mac(b"name", inputs), mac + b"\n" + payload)
        self._seen[(body, filename, sha256, tuple(expected))] = check
