"""assay's formats against the reference: Go's golang.org/x/mod/sumdb/tlog and sumdb/note.

The oracle (tests/log/oracle/main.go, built once per session by conftest.py) checks what assay
produces, and produces what assay must accept. Each check also shows the oracle saying no to
something tampered, so that a test cannot pass against an oracle that accepts everything.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assay.log import checkpoint, cosignature, merkle, note, proof, tiles
from assay.log.checkpoint import Checkpoint
from tests.log.conftest import Oracle, b64, unb64

ORIGIN = "example.com/team"


def build(entries: list[bytes]) -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    for e in entries:
        store.append(e)
    return store


SMALL = [b"small entry %d" % i for i in range(1000)]
SMALL_STORE = build(SMALL)
BIG = [b"%d" % i for i in range(66_000)]  # three tile levels: 257 full level-0 tiles, level 2 partial
BIG_STORE = build(BIG)


def test_go_opens_assays_signed_and_cosigned_checkpoints(oracle: Oracle) -> None:
    log = note.Ed25519Signer.generate(ORIGIN)
    witness = cosignature.CosignatureSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
    cp = Checkpoint(ORIGIN, 1000, merkle.tree_hash(1000, SMALL_STORE))
    signed = checkpoint.sign(cp, [log])
    cosigned = cosignature.cosign(signed, witness)
    wkey = witness.verifier().verifier_key()
    plain, both, unknown_witness, tampered, forged_cosig = oracle([
        {"op": "open_note", "note": signed.decode(), "vkeys": [log.verifier_key()]},
        {"op": "open_note", "note": cosigned.decode(), "vkeys": [log.verifier_key()], "cosigner_vkeys": [wkey]},
        {"op": "open_note", "note": cosigned.decode(), "vkeys": [log.verifier_key()]},
        {"op": "open_note", "note": signed.decode().replace("1000", "1001"), "vkeys": [log.verifier_key()]},
        {
            "op": "open_note", "note": cosigned.decode().replace("\n1000\n", "\n1001\n"),
            "vkeys": [], "cosigner_vkeys": [wkey],
        },
    ])
    assert plain["ok"], plain
    assert plain["text"] == cp.text()
    assert plain["verified"] == [f"{ORIGIN}+{log.key_id:08x}"]
    assert both["ok"], both
    assert both["verified"] == [f"{ORIGIN}+{log.key_id:08x}", f"witness.example.com/w1+{witness.key_id:08x}"]
    assert unknown_witness["ok"]
    assert unknown_witness["unverified"] == 1
    assert not tampered["ok"]
    assert "invalid signature" in tampered["error"]
    assert not forged_cosig["ok"]
    # Go's verifier key parser accepts assay's key string and computes the same key ID.
    assert log.verifier_key().startswith(f"{ORIGIN}+{log.key_id:08x}+")


def test_assay_opens_gos_notes_and_signs_them_byte_for_byte(oracle: Oracle) -> None:
    text = "example.com/team\n3\n" + note.b64encode(merkle.tree_hash(3, SMALL_STORE)) + "\n"
    (key,) = oracle([{"op": "generate_key", "name": ORIGIN}])
    (signed,) = oracle([{"op": "sign_note", "skey": key["skey"], "text": text}])
    assert signed["ok"], signed
    verifier = note.Ed25519Verifier.from_verifier_key(key["vkey"])
    opened = note.open_note(signed["note"].encode(), [verifier])
    assert opened.text == text
    assert checkpoint.Checkpoint.parse(opened.text).size == 3
    # Same key, same text: Ed25519 is deterministic, so assay's note is Go's.
    signer = note.Ed25519Signer.from_signer_key(key["skey"])
    assert signer.verifier_key() == key["vkey"]
    assert note.sign(text, [signer]).decode() == signed["note"]

    seed = bytes(range(32))
    (cosigned,) = oracle([
        {"op": "cosign", "note": signed["note"], "name": "witness.example", "seed": b64(seed), "timestamp": 1700000000},
    ])
    assert cosigned["ok"], cosigned
    witness = cosignature.CosignatureVerifier.from_verifier_key(cosigned["vkey"])
    ours = cosignature.CosignatureSigner("witness.example", Ed25519PrivateKey.from_private_bytes(seed))
    assert witness.key_id == ours.key_id
    opened = note.open_note(cosigned["note"].encode(), [verifier, witness])
    assert [s.name for s in opened.verified] == [ORIGIN, "witness.example"]
    assert cosignature.timestamp_of(opened.verified[1].signature) == 1700000000
    with pytest.raises(note.InvalidSignatureError):
        note.open_note(cosigned["note"].replace("\n3\n", "\n4\n").encode(), [witness])


def _pairs(rng: random.Random, size: int, count: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    inclusion, consistency = [], []
    for _ in range(count):
        n = rng.randint(1, size)
        inclusion.append((rng.randrange(n), n))
        consistency.append((rng.randint(1, n), n))
    inclusion += [(0, 1), (size - 1, size), (0, size)]
    consistency += [(1, 1), (size, size), (1, size), (size - 1, size)]
    return inclusion, consistency


def test_go_accepts_assays_proofs_and_rejects_tampered_ones(oracle: Oracle) -> None:
    rng = random.Random(13)
    inclusion, consistency = _pairs(rng, 1000, 150)
    requests = []
    for index, size in inclusion:
        p = merkle.inclusion_proof(index, size, SMALL_STORE)
        request = {
            "op": "check_inclusion", "size": size, "index": index,
            "root": b64(merkle.tree_hash(size, SMALL_STORE)), "leaf": b64(merkle.leaf_hash(SMALL[index])),
            "proof": [b64(h) for h in p],
        }
        requests.append(request)
        if p:
            requests.append({**request, "proof": [b64(h) for h in p[:-1]] + [b64(merkle.leaf_hash(b"x"))]})
    for old, new in consistency:
        p = merkle.consistency_proof(old, new, SMALL_STORE)
        request = {
            "op": "check_consistency", "old_size": old, "new_size": new,
            "old_root": b64(merkle.tree_hash(old, SMALL_STORE)), "new_root": b64(merkle.tree_hash(new, SMALL_STORE)),
            "proof": [b64(h) for h in p],
        }
        requests.append(request)
        if p:
            requests.append({**request, "proof": [b64(merkle.leaf_hash(b"x"))] + [b64(h) for h in p[1:]]})
    answers = oracle(requests)
    # Every genuine proof (the first of each pair) passes, every tampered one fails.
    expected = []
    for index, size in inclusion:
        expected.append(True)
        if merkle.inclusion_proof(index, size, SMALL_STORE):
            expected.append(False)
    for old, new in consistency:
        expected.append(True)
        if merkle.consistency_proof(old, new, SMALL_STORE):
            expected.append(False)
    assert [a["ok"] for a in answers] == expected


def test_stored_hashes_roots_and_proofs_match_gos(oracle: Oracle) -> None:
    rng = random.Random(62)
    inclusion, consistency = _pairs(rng, 1000, 100)
    (go,) = oracle([{
        "op": "tree", "entries": [b64(e) for e in SMALL],
        "inclusion": inclusion, "consistency": consistency,
    }])
    assert go["ok"], go
    assert [unb64(h) for h in go["hashes"]] == SMALL_STORE.hashes
    assert go["stored_hash_count"] == merkle.stored_hash_count(1000) == len(SMALL_STORE.hashes)
    assert [unb64(h) for h in go["roots"]] == [merkle.tree_hash(n, SMALL_STORE) for n in range(1, 1001)]
    for (index, size), go_proof in zip(inclusion, go["inclusion"], strict=True):
        hashes = [unb64(h) for h in go_proof or []]
        assert hashes == merkle.inclusion_proof(index, size, SMALL_STORE)
        # assay's verifier accepts Go's proof.
        merkle.verify_inclusion(
            merkle.leaf_hash(SMALL[index]), index, size, hashes, merkle.tree_hash(size, SMALL_STORE)
        )
    for (old, new), go_proof in zip(consistency, go["consistency"], strict=True):
        hashes = [unb64(h) for h in go_proof or []]
        assert hashes == merkle.consistency_proof(old, new, SMALL_STORE)
        merkle.verify_consistency(
            old, new, merkle.tree_hash(old, SMALL_STORE), merkle.tree_hash(new, SMALL_STORE), hashes
        )


def test_tiles_match_gos_tiles(oracle: Oracle) -> None:
    size = len(BIG)
    (go,) = oracle([{"op": "tree", "entries": [b64(e) for e in BIG]}])
    assert go["ok"], go
    ours = {t.path(): tiles.tile_data(t, BIG_STORE) for t in tiles.tiles_for_size(size)}
    theirs = {path: unb64(data) for path, data in go["tiles"].items()}
    assert sorted(ours) == sorted(theirs)
    assert "tile/2/000.p/1" in ours
    assert "tile/0/257.p/208" in ours
    assert ours == theirs
    assert unb64(go["roots"][-1]) == merkle.tree_hash(size, BIG_STORE)


def test_go_reads_assays_tiles_and_rejects_a_tampered_one(oracle: Oracle) -> None:
    size = len(BIG)
    served = {t.path(): b64(tiles.tile_data(t, BIG_STORE)) for t in tiles.tiles_for_size(size)}
    root = merkle.tree_hash(size, BIG_STORE)
    indexes = [0, 255, 256, 65_535, 65_536, size - 1]
    # Debian's x/mod TileHashReader checks fetched tiles against their parents only from the
    # len(stx)-th tile on (tile.go: `for i := len(stx); ...`), so where the tree head's subtrees
    # share tiles (66,000 = 65,536 + 256 + 128 + 64 + 16: five subtrees in three tiles) it checks
    # none. The tampering check uses a size whose subtrees sit one per tile (65,536 + 256).
    small = 65_792
    tampered = {t.path(): tiles.tile_data(t, BIG_STORE) for t in tiles.tiles_for_size(small)}
    untouched = {path: b64(data) for path, data in tampered.items()}
    data = bytearray(tampered["tile/0/100"])
    data[5] ^= 1
    tampered["tile/0/100"] = bytes(data)
    small_root = b64(merkle.tree_hash(small, BIG_STORE))
    good, control, bad = oracle([
        {"op": "read_tiles", "size": size, "root": b64(root), "tiles": served, "indexes": indexes},
        {"op": "read_tiles", "size": small, "root": small_root, "tiles": untouched, "indexes": [25_600]},
        {
            "op": "read_tiles", "size": small, "root": small_root,
            "tiles": {path: b64(data) for path, data in tampered.items()}, "indexes": [25_600],
        },
    ])
    assert control["ok"], control
    assert good["ok"], good
    assert unb64(good["root"]) == root
    assert [unb64(h) for h in good["leaves"]] == [merkle.leaf_hash(BIG[i]) for i in indexes]
    for i, go_proof in zip(indexes, good["proofs"], strict=True):
        assert [unb64(h) for h in go_proof or []] == merkle.inclusion_proof(i, size, BIG_STORE)
    assert not bad["ok"]
    assert "inconsistent tile" in bad["error"]


def test_go_checks_a_tlog_proof_receipt(oracle: Oracle) -> None:
    # The receipt's pieces, taken apart by assay's parser, pass Go's note and proof checks.
    log = note.Ed25519Signer.generate(ORIGIN)
    signed = checkpoint.sign(Checkpoint(ORIGIN, 1000, merkle.tree_hash(1000, SMALL_STORE)), [log])
    receipt = proof.TlogProof.parse(proof.make(421, SMALL_STORE, signed).format())
    opened, inclusion = oracle([
        {"op": "open_note", "note": receipt.checkpoint.decode(), "vkeys": [log.verifier_key()]},
        {
            "op": "check_inclusion", "size": 1000, "index": receipt.index,
            "root": b64(merkle.tree_hash(1000, SMALL_STORE)), "leaf": b64(merkle.leaf_hash(SMALL[421])),
            "proof": [b64(h) for h in receipt.hashes],
        },
    ])
    assert opened["ok"], opened
    assert inclusion["ok"], inclusion
