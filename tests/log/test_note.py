"""C2SP signed-note: keys, key IDs, signing and the rules for opening a note."""

from __future__ import annotations

import base64

import pytest

from assay.log import note
from assay.log.note import Ed25519Signer, Ed25519Verifier, NoteError

# Go's golang.org/x/mod/sumdb/note note_test.go: TestNewVerifier, TestNewSigner, TestSign.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def test_go_notes_test_vectors() -> None:
    signer = Ed25519Signer.from_signer_key(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier_key() == GO_VKEY
    assert signer.signer_key() == GO_SKEY
    # Ed25519 signatures are deterministic, so the note is byte for byte Go's.
    assert note.sign(GO_TEXT, [signer]) == GO_NOTE
    opened = note.open_note(GO_NOTE, [Ed25519Verifier.from_verifier_key(GO_VKEY)])
    assert opened.text == GO_TEXT
    assert [(s.name, s.key_id) for s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]


def test_the_key_id_is_the_first_four_bytes_of_sha256_of_name_newline_type_key() -> None:
    import hashlib

    verifier = Ed25519Verifier.from_verifier_key(GO_VKEY)
    raw = base64.b64decode(GO_VKEY.split("+", 2)[2])
    assert raw[0] == 0x01
    assert len(raw) == 33
    digest = hashlib.sha256(b"PeterNeumann\n" + raw).digest()
    assert verifier.key_id == int.from_bytes(digest[:4], "big")


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # Go: wrong length
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # Go: unknown algorithm
        "PeterNeumann",
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        Ed25519Verifier.from_verifier_key(vkey)


def test_malformed_signer_keys_are_rejected() -> None:
    with pytest.raises(NoteError):
        Ed25519Signer.from_signer_key(GO_SKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError):
        Ed25519Signer.from_signer_key(GO_SKEY.removeprefix("PRIVATE+"))
    with pytest.raises(NoteError):
        Ed25519Signer.from_signer_key(GO_VKEY)


PETER = Ed25519Verifier.from_verifier_key(GO_VKEY)


def test_unknown_signatures_are_ignored_and_kept() -> None:
    other = Ed25519Signer.generate("example.com/other")
    msg = note.sign(GO_TEXT, [other], keep=note.parse(GO_NOTE)[1])
    opened = note.open_note(msg, [PETER])
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert [s.name for s in opened.unknown] == ["example.com/other"]
    # Same name as a known key but another key ID: unknown, so ignored too.
    impostor = Ed25519Signer.generate("PeterNeumann")
    opened = note.open_note(note.sign(GO_TEXT, [impostor], keep=note.parse(GO_NOTE)[1]), [PETER])
    assert len(opened.verified) == 1
    assert len(opened.unknown) == 1


def test_a_note_signed_by_no_known_key_is_rejected() -> None:
    with pytest.raises(note.UnverifiedNoteError):
        note.open_note(GO_NOTE, [Ed25519Signer.generate("example.com/log").verifier()])
    with pytest.raises(note.UnverifiedNoteError):
        note.open_note(GO_NOTE, [])


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    tampered = GO_NOTE.replace(b"cryptography", b"cryptographY")
    with pytest.raises(note.InvalidSignatureError):
        note.open_note(tampered, [PETER])
    # Even next to a good signature by another known key.
    good = Ed25519Signer.generate("example.com/good")
    forged_sig = note.parse(GO_NOTE)[1]
    msg = note.sign(GO_TEXT.replace("problem,", "problem;"), [good], keep=forged_sig)
    with pytest.raises(note.InvalidSignatureError):
        note.open_note(msg, [PETER, good.verifier()])


@pytest.mark.parametrize(
    "msg",
    [
        GO_NOTE.replace(b"\n\n", b"\n"),  # no blank line before the signatures
        GO_NOTE[:-1],  # signature block not ending in a newline
        GO_TEXT.encode() + b"\n",  # no signatures at all
        GO_NOTE.replace("— ".encode(), b"- "),  # not an em dash
        GO_NOTE.replace(b"PeterNeumann x08", b"Peter+Neumann x08"),  # '+' in the key name
        GO_NOTE.replace(b"x08go/", b"x08go"),  # broken base64
        b"text\x01\n\n" + GO_NOTE.split(b"\n\n")[1],  # control character
        b"\xff\n\n" + GO_NOTE.split(b"\n\n")[1],  # not UTF-8
        GO_TEXT.encode() + "\n— PeterNeumann AAAA\n".encode(),  # shorter than a key ID + 1 byte
    ],
)
def test_malformed_notes_are_rejected(msg: bytes) -> None:
    with pytest.raises(NoteError):
        note.open_note(msg, [PETER])


def test_the_text_is_split_at_the_last_blank_line() -> None:
    signer = Ed25519Signer.generate("example.com/log")
    text = "one\n\ntwo\n"
    opened = note.open_note(note.sign(text, [signer]), [signer.verifier()])
    assert opened.text == text


def test_signing_checks_the_text() -> None:
    signer = Ed25519Signer.generate("example.com/log")
    with pytest.raises(NoteError, match="newline"):
        note.sign("no newline", [signer])
    with pytest.raises(NoteError, match="control"):
        note.sign("tab\there\n", [signer])
    with pytest.raises(NoteError, match="UTF-8"):
        note.sign("\ud800\n", [signer])
    with pytest.raises(NoteError):
        Ed25519Signer.generate("bad name")


def test_at_least_16_signatures_are_accepted_and_too_many_are_not() -> None:
    log = Ed25519Signer.generate("example.com/log")
    witnesses = [Ed25519Signer.generate(f"example.com/w{i}") for i in range(20)]
    msg = note.sign("hello\n", [log, *witnesses])
    assert len(note.open_note(msg, [log.verifier()]).unknown) == 20
    many = note.parse(msg)[1] * 6  # 126 lines
    with pytest.raises(NoteError, match="more than 100"):
        note.open_note(note.sign("hello\n", [], keep=many), [log.verifier()])
