"""The index's log key and origin: who signs the checkpoints, and under which name.

- Origin (C2SP tlog-checkpoint line 1; tlog-tiles "Parameters": the log's URL prefix without
  scheme and trailing slashes): ``--base-url`` without its scheme (``https://example.com/team``
  gives ``example.com/team``), the log's ``/log/`` being under it. Without a base URL, the
  listen address ``<host>:<port>`` from the settings: stable only if the port is fixed, so a
  public index sets ``--base-url``.
- Key name: the origin, as tlog-checkpoint recommends ("the log's key name SHOULD be the
  origin"); the verifier key is ``<origin>+<key ID>+<base64>`` (C2SP signed-note).
- Key: Ed25519, in ``<data dir>/log/signing.key`` (created on first use, mode 0600) or the
  file ``--log-key`` names: a PKCS#8 PEM private key (``openssl genpkey -algorithm ed25519``)
  or a Go ``note`` signer key (``PRIVATE+KEY+<name>+<id>+<base64>``, whose name is replaced by
  the origin). A key file others can read is refused, as ssh refuses one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assay.config import Settings
from assay.log import entries, note


class LogKeyError(RuntimeError):
    """The log's key cannot be loaded or created; the message says which file and why."""


def origin(settings: Settings, index: str = entries.DEFAULT_INDEX) -> str:
    """The checkpoint origin of `index`: its base URL without the scheme (``example.com`` for
    the default index at the root, ``example.com/team`` for the index ``team``). One key signs
    every index's checkpoints, each under its own origin as the key name, so each index has its
    own verifier key (C2SP signed-note: the key hash covers the name)."""
    if settings.base_url:
        site = settings.base_url.split("://", 1)[1].rstrip("/")
    else:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        site = f"{host}:{settings.port}"
    return site if index == entries.DEFAULT_INDEX else f"{site}/{index}"


def key_path(settings: Settings) -> Path:
    return settings.log_key or settings.data_dir / "log" / "signing.key"


def _create(path: Path) -> None:
    """Write a new key so that no reader ever sees a half-written or second key: written to a
    private temporary file, then hard-linked into place, which fails if another process (a
    second worker starting at the same moment) got there first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _parse(path: Path, data: bytes) -> Ed25519PrivateKey:
    text = data.strip()
    if text.startswith(b"PRIVATE+KEY+"):
        try:
            skey = text.decode("ascii")
            note.Ed25519Signer.from_signer_key(skey)  # checks the format and key ID
        except (note.NoteError, UnicodeDecodeError) as exc:
            raise LogKeyError(f"log key {path}: {exc}") from None
        return Ed25519PrivateKey.from_private_bytes(note.b64decode(skey.split("+", 4)[4])[1:])
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise LogKeyError(f"log key {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LogKeyError(f"log key {path} is not an Ed25519 key (C2SP signed-note signs with Ed25519)")
    return key


def load_private_key(settings: Settings, *, create: bool = True) -> Ed25519PrivateKey:
    path = key_path(settings)
    if not path.exists():
        if settings.log_key is not None or not create:
            raise LogKeyError(f"log key {path} does not exist")
        _create(path)
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise LogKeyError(f"log key {path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
        return _parse(path, path.read_bytes())
    except OSError as exc:
        raise LogKeyError(f"cannot read log key {path}: {exc.strerror}") from None


def signer(settings: Settings, index: str = entries.DEFAULT_INDEX, *, create: bool = True) -> note.Ed25519Signer:
    """The index's checkpoint signer, named after its origin."""
    name = origin(settings, index)
    try:
        return note.Ed25519Signer(name, load_private_key(settings, create=create))
    except note.NoteError as exc:
        raise LogKeyError(f"the log origin {name!r} is not a key name: {exc}") from None
