"""The log's key and origin (issue 13, item 2): created once with mode 0600, given as a PEM or a
Go note signer key, refused when others can read it; the origin is the base URL without its
scheme. In-process (no server needed), except the start-up refusal, which is `assay serve`'s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assay.config import load_settings
from assay.log import keys, note
from tests.support.server import client_environ


def test_key_is_created_once_private_and_named_after_the_origin(tmp_path: Path) -> None:
    s = load_settings({"data_dir": str(tmp_path), "base_url": "https://example.com/team/"}, environ={})
    first = keys.signer(s)
    path = tmp_path / "log" / "signing.key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert first.name == "example.com/team"
    again = keys.signer(s)
    assert again.verifier_key() == first.verifier_key()
    assert first.verifier_key().startswith("example.com/team+")
    # Without a base URL: the listen address.
    plain = load_settings({"data_dir": str(tmp_path), "port": "8123"}, environ={})
    assert keys.origin(plain) == "127.0.0.1:8123"
    # A named index's log: the same key under the index's own origin (issue 11, part 3).
    assert keys.origin(plain, "team") == "127.0.0.1:8123/team"
    assert keys.origin(s, "team") == "example.com/team/team"


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    s = load_settings({"data_dir": str(tmp_path)}, environ={})
    keys.signer(s)
    (tmp_path / "log" / "signing.key").chmod(0o644)
    with pytest.raises(keys.LogKeyError, match=r"readable by others .*chmod 600"):
        keys.signer(s)
    # assay serve says so and stops, before listening.
    run = subprocess.run(
        [sys.executable, "-m", "assay", "serve", "--data-dir", str(tmp_path), "--port", "0"],
        capture_output=True, text=True, env=client_environ(), timeout=60, check=False,
    )
    assert run.returncode == 1
    assert "readable by others" in run.stderr
    assert "Traceback" not in run.stderr  # one message, not a crash
    assert "assay: serving" not in run.stdout


def test_log_key_file_pem_or_note_signer_key(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    pem.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    pem.chmod(0o600)
    s = load_settings({"data_dir": str(tmp_path), "log_key": str(pem), "base_url": "http://idx.test"}, environ={})
    signer = keys.signer(s)
    assert signer.verifier().public_key == private.public_key().public_bytes_raw()
    assert not (tmp_path / "log").exists()  # a given key is used, none created
    # A Go note signer key (PRIVATE+KEY+name+id+base64): the same key, renamed to the origin.
    go = tmp_path / "k.note"
    go.write_text(note.Ed25519Signer("other.name", private).signer_key() + "\n")
    go.chmod(0o600)
    s2 = load_settings({"data_dir": str(tmp_path), "log_key": str(go), "base_url": "http://idx.test"}, environ={})
    assert keys.signer(s2).verifier_key() == signer.verifier_key()
    # Not a key, a missing file, another algorithm: refused with the file's name.
    bad = tmp_path / "bad"
    bad.write_text("hello")
    os.chmod(bad, 0o600)
    for path, message in ((bad, "not an unencrypted PEM"), (tmp_path / "missing", "does not exist")):
        given = load_settings({"data_dir": str(tmp_path), "log_key": str(path)}, environ={})
        with pytest.raises(keys.LogKeyError, match=message):
            keys.signer(given)
