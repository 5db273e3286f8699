"""C2SP tlog-checkpoint bodies and C2SP tlog-cosignature witness signatures."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assay.log import checkpoint, cosignature, note
from assay.log.checkpoint import Checkpoint, CheckpointError

# The example of the tlog-checkpoint spec.
ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
SPEC_TEXT = f"example.com/behind-the-sofa\n20852163\n{ROOT}\n"


def test_the_specs_example_parses_and_formats_back() -> None:
    cp = Checkpoint.parse(SPEC_TEXT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.text() == SPEC_TEXT
    with_ext = Checkpoint.parse(SPEC_TEXT + "ext one\next two\n")
    assert with_ext.extensions == ("ext one", "ext two")
    assert with_ext.text() == SPEC_TEXT + "ext one\next two\n"


def test_the_empty_tree() -> None:
    cp = Checkpoint("example.com/team", 0, note.b64decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="))
    assert cp.text() == "example.com/team\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"


@pytest.mark.parametrize(
    "text",
    [
        SPEC_TEXT[:-1],  # no final newline
        "example.com/behind-the-sofa\n20852163\n",  # two lines
        "\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        SPEC_TEXT.replace("20852163", "020852163"),  # leading zero
        SPEC_TEXT.replace("20852163", "-1"),
        SPEC_TEXT.replace("20852163", "+1"),
        SPEC_TEXT.replace("20852163", "1 "),
        SPEC_TEXT.replace("20852163", "٣"),  # a non-ASCII digit int() would take
        SPEC_TEXT.replace(ROOT, ROOT[:-1]),  # unpadded
        SPEC_TEXT.replace(ROOT, ROOT[:-2] + "J="),  # non-canonical last digit
        SPEC_TEXT.replace(ROOT, ROOT[:-4]),  # 30 bytes
        SPEC_TEXT + "\n",  # an empty extension line
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_sign_and_open_a_checkpoint() -> None:
    log = note.Ed25519Signer.generate("example.com/team")
    cp = Checkpoint("example.com/team", 5, bytes(range(32)))
    signed = checkpoint.sign(cp, [log])
    opened, n = checkpoint.open_checkpoint(signed, [log.verifier()], origin="example.com/team")
    assert opened == cp
    assert n.verified[0].name == "example.com/team"
    with pytest.raises(CheckpointError, match=r"not 'example\.com/other'"):
        checkpoint.open_checkpoint(signed, [log.verifier()], origin="example.com/other")


# --- cosignatures -------------------------------------------------------------------------------


def test_a_cosignature_signs_the_cosignature_v1_message() -> None:
    key = Ed25519PrivateKey.generate()
    witness = cosignature.CosignatureSigner("witness.example.com/w1", key, clock=lambda: 1679315147)
    text = SPEC_TEXT.encode()
    sig = witness.sign(text)
    assert cosignature.timestamp_of(sig) == 1679315147
    assert len(sig) == 72
    # The message of the spec's "Ed25519 signed message" example, signed by the raw key.
    message = b"cosignature/v1\ntime 1679315147\n" + text
    key.public_key().verify(sig[8:], message)
    assert witness.verifier().verify(text, sig)
    assert not witness.verifier().verify(text.replace(b"20852163", b"20852164"), sig)
    # The key ID uses signature type 0x04, so the same key as a plain note key has another ID.
    plain = note.Ed25519Signer("witness.example.com/w1", key)
    assert plain.key_id != witness.key_id
    assert witness.key_id == note.key_id("witness.example.com/w1", b"\x04" + witness.public_key)


def test_a_cosigned_checkpoint_keeps_the_log_signature() -> None:
    log = note.Ed25519Signer.generate("example.com/team")
    witness = cosignature.CosignatureSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
    signed = checkpoint.sign(Checkpoint("example.com/team", 5, bytes(range(32))), [log])
    cosigned = cosignature.cosign(signed, witness)
    assert cosigned.startswith(signed)
    _, opened = checkpoint.open_checkpoint(cosigned, [log.verifier(), witness.verifier()])
    assert [s.name for s in opened.verified] == ["example.com/team", "witness.example.com/w1"]
    # A client that does not know the witness still accepts the log's signature.
    assert len(checkpoint.open_checkpoint(cosigned, [log.verifier()])[1].unknown) == 1
    # The witness's key string is a verifier key of type 0x04.
    vkey = witness.verifier().verifier_key()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert cosignature.CosignatureVerifier.from_verifier_key(vkey).key_id == witness.key_id
    with pytest.raises(note.NoteError, match="not cosignature/v1"):
        cosignature.CosignatureVerifier.from_verifier_key(log.verifier_key())
    # A cosignature moved to another checkpoint fails.
    other = checkpoint.sign(Checkpoint("example.com/team", 6, bytes(range(32))), [log])
    moved = other + cosigned[len(signed) :]
    with pytest.raises(note.InvalidSignatureError):
        checkpoint.open_checkpoint(moved, [log.verifier(), witness.verifier()])


def test_cosignature_timestamps_are_bounded() -> None:
    with pytest.raises(note.NoteError):
        cosignature.signed_message(b"x\n", 2**63)
    with pytest.raises(note.NoteError):
        cosignature.timestamp_of(b"\x00" * 64)
