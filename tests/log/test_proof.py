"""C2SP tlog-proof receipts: format, parse and verify."""

from __future__ import annotations

import pytest

from assay.log import checkpoint, cosignature, merkle, note, proof
from assay.log.checkpoint import Checkpoint
from assay.log.proof import TlogProof, TlogProofError

ORIGIN = "example.com/team"
LOG = note.Ed25519Signer.generate(ORIGIN)
ENTRIES = [b"file %d" % i for i in range(1000)]
STORE = merkle.MemoryHashStore()
for _e in ENTRIES:
    STORE.append(_e)
SIGNED = checkpoint.sign(Checkpoint(ORIGIN, 1000, merkle.tree_hash(1000, STORE)), [LOG])


def test_a_proof_round_trips_and_verifies() -> None:
    p = proof.make(737, STORE, SIGNED)
    text = p.format()
    lines = text.decode().split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "index 737"
    assert len(lines[2 : 2 + len(p.hashes)]) == 10
    assert text.endswith(b"\n\n" + SIGNED)
    parsed = TlogProof.parse(text)
    assert parsed == p
    cp, _ = parsed.verify(ENTRIES[737], [LOG.verifier()], ORIGIN)
    assert cp.size == 1000


def test_extra_data_is_carried_but_not_trusted() -> None:
    p = proof.make(0, STORE, SIGNED, extra=b"sha256:abc")
    text = p.format()
    assert text.split(b"\n")[1] == b"extra c2hhMjU2OmFiYw=="
    assert TlogProof.parse(text).extra == b"sha256:abc"
    TlogProof.parse(text).verify(ENTRIES[0], [LOG.verifier()], ORIGIN)


def test_a_single_entry_log_has_an_empty_proof() -> None:
    store = merkle.MemoryHashStore()
    store.append(b"only")
    signed = checkpoint.sign(Checkpoint(ORIGIN, 1, merkle.tree_hash(1, store)), [LOG])
    text = proof.make(0, store, signed).format()
    assert text.startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n")
    TlogProof.parse(text).verify(b"only", [LOG.verifier()], ORIGIN)


def test_a_cosigned_proof_verifies_with_the_witness() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    witness = cosignature.CosignatureSigner("witness.example", Ed25519PrivateKey.generate())
    p = proof.make(5, STORE, cosignature.cosign(SIGNED, witness))
    _, opened = TlogProof.parse(p.format()).verify(ENTRIES[5], [LOG.verifier(), witness.verifier()], ORIGIN)
    assert len(opened.verified) == 2


def test_wrong_entries_keys_and_logs_fail() -> None:
    p = TlogProof.parse(proof.make(737, STORE, SIGNED).format())
    with pytest.raises(TlogProofError, match="does not lead"):
        p.verify(ENTRIES[736], [LOG.verifier()], ORIGIN)
    with pytest.raises(TlogProofError, match="checkpoint does not verify"):
        p.verify(ENTRIES[737], [note.Ed25519Signer.generate(ORIGIN).verifier()], ORIGIN)
    with pytest.raises(TlogProofError, match=r"not 'example\.com/other'"):
        p.verify(ENTRIES[737], [LOG.verifier()], "example.com/other")
    moved = TlogProof(736, p.hashes, p.checkpoint)
    with pytest.raises(TlogProofError):
        moved.verify(ENTRIES[737], [LOG.verifier()], ORIGIN)
    beyond = TlogProof(1000, p.hashes, p.checkpoint)
    with pytest.raises(TlogProofError, match="not in a tree of size 1000"):
        beyond.verify(ENTRIES[737], [LOG.verifier()], ORIGIN)


GOOD = proof.make(737, STORE, SIGNED).format()


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"),
        GOOD.replace(b"index 737", b"index 0737"),
        GOOD.replace(b"index 737", b"index -1"),
        GOOD.replace(b"index 737", b"idx 737"),
        GOOD.replace(b"index 737\n", b""),
        GOOD.replace(b"\n\n", b"\n", 1),  # no empty line before the checkpoint
        GOOD.replace(b"index 737\n", b"index 737\nnot base64!\n"),
        GOOD.replace(b"index 737\n", b"index 737\nAAAA\n"),  # not 32 bytes
        GOOD.replace(b"index 737\n", b"extra ***\nindex 737\n"),
    ],
)
def test_malformed_proofs_are_rejected(text: bytes) -> None:
    with pytest.raises(TlogProofError):
        TlogProof.parse(text)
