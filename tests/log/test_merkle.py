"""RFC 6962 hashing and proofs: published test vectors, then properties over random trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.log import merkle

# Certificate Transparency's RFC 6962 reference vectors: the leaves d0..d7 and the root of
# each prefix tree, from certificate-transparency's python/ct/crypto/merkle_test.py
# (TreeHasherTest.test_vector_leaves / test_vector_hashes, "lifted from the C++ branch").
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# The same file, MerkleVerifierTest.sha256_proofs: (old size, new size, proof).
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]
# The same file: a real inclusion proof from a CT log (leaf 848049 of a 3,630,887-entry tree).
CT_LOG_LEAF_HASH = "7a395c866d5ecdb0cccb623e011dbc392cd348d1d1d72776174e127a24b09c78"
CT_LOG_INDEX, CT_LOG_SIZE = 848049, 3630887
CT_LOG_ROOT = "78316a05c9bcf14a3a4548f5b854a9adfcd46a4c034401b3ce7eb7ac2f1d0ecb"
CT_LOG_PATH = [
    "1a208aeebcd1b39fe2de247ee8db9454e1e93a312d206b87f6ca9cc6ec6f1ddd",
    "0a1b78b383f580856f433c01a5741e160d451c185910027f6cc9f828687a40c4",
    "3d1745789bc63f2da15850de1c12a5bf46ed81e1cc90f086148b1662e79aab3d",
    "9095b61e14d8990acf390905621e62b1714fb8e399fbb71de5510e0aef45affe",
    "0a332b91b8fab564e6afd1dd452449e04619b18accc0ff9aa8393cd4928451f2",
    "2336f0181d264aed6d8f3a6507ca14a8d3b3c3a23791ac263e845d208c1ee330",
    "b4ce56e300590500360c146c6452edbede25d4ed83919278749ee5dbe178e048",
    "933f6ddc848ea562e4f9c5cfb5f176941301dad0c6fdb9d1fbbe34fac1be6966",
    "b95a6222958a86f74c030be27c44f57dbe313e5e7c7f4ffb98bcbd3a03bb52f2",
    "daeeb3ce5923defd0faeb8e0c210b753b85b809445d7d3d3cd537a9aabaa9c45",
    "7fadd0a13e9138a2aa6c3fdec4e2275af233b94812784f66bcca9aa8e989f2bc",
    "1864e6ba3e32878610546539734fb5eeae2529991f130c575c73a7e25a2a7c56",
    "12842d1202b1dc6828a17ab253c02e7ce9409b5192430feba44189f39cc02d66",
    "29af64b16fa3053c13d02ac63aa75b23aa468506e44c3a2315edc85d2dc22b11",
    "b527b99934a0bd9edd154e449b0502e2c499bba783f3bc3dfe23364b6b532009",
    "4584db8ae8e351ace08e01f306378a92bfd43611714814f3d834a2842d69faa8",
    "86a9a41573b0d6e4292f01e93243d6cc65b30f06606fc6fa57390e7e90ed580f",
    "a88b98fbe84d4c6aae8db9d1605dfac059d9f03fe0fcb0d5dff1295dacba09e6",
    "06326dc617a6d1f7021dc536026dbfd5fffc6f7c5531d48ef6ccd1ed1569f2a1",
    "f41fe8fdc3a2e4e8345e30216e7ebecffee26ff266eeced208a6c2a3cf08f960",
    "40cf5bde8abb76983f3e98ba97aa36240402975674e120f234b3448911090f8d",
    "b3222dc8658538079883d980d7fdc2bef9285344ea34338968f736b04aeb387a",
]


def store(entries: list[bytes]) -> merkle.MemoryHashStore:
    s = merkle.MemoryHashStore()
    for e in entries:
        s.append(e)
    return s


CT_STORE = store(CT_LEAVES)


def test_the_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert merkle.tree_hash(0, CT_STORE).hex() == hashlib.sha256(b"").hexdigest()
    assert merkle.EMPTY_TREE_HASH.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_and_node_hashes_match_the_ct_reference() -> None:
    # python/ct/crypto/merkle_test.py TreeHasherTest.sha256_leaves and sha256_nodes.
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.leaf_hash(bytes(range(0x10, 0x20))).hex() == (
        "3bfb960453ebaebf33727da7a1f4db38acc051d381b6da20d6d4e88f0eabfd7a"
    )
    assert merkle.node_hash(bytes(range(32)), bytes(range(32, 64))).hex() == (
        "1a378704c17da31e2d05b6d121c2bb2c7d76f6ee6fa8f983e596c2d034963c57"
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_heads_match_the_ct_reference_roots(size: int) -> None:
    assert merkle.tree_hash(size, CT_STORE).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_ct_reference(old: int, new: int, proof: list[str]) -> None:
    assert [h.hex() for h in merkle.consistency_proof(old, new, CT_STORE)] == proof
    merkle.verify_consistency(
        old, new, bytes.fromhex(CT_ROOTS[old - 1]), bytes.fromhex(CT_ROOTS[new - 1]), [bytes.fromhex(h) for h in proof]
    )


def test_a_real_ct_logs_inclusion_proof_verifies() -> None:
    path = [bytes.fromhex(h) for h in CT_LOG_PATH]
    leaf, root = bytes.fromhex(CT_LOG_LEAF_HASH), bytes.fromhex(CT_LOG_ROOT)
    merkle.verify_inclusion(leaf, CT_LOG_INDEX, CT_LOG_SIZE, path, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, CT_LOG_INDEX + 1, CT_LOG_SIZE, path, root)


def test_an_inclusion_proof_in_a_57_million_entry_log_is_26_hashes() -> None:
    # The figure: 26 hashes of 32 bytes, 832 bytes. The proof's length depends only on
    # the shape of the tree, so a reader that hands out dummy hashes suffices.
    proof = merkle.inclusion_proof(12_345_678, 57_000_000, lambda indexes: [b"\x00" * 32] * len(indexes))
    assert len(proof) == 26
    assert sum(map(len, proof)) == 832


def test_stored_hash_indexes_are_go_tlogs() -> None:
    # Go's layout for the first leaves: leaf 0 at 0, leaf 1 at 1, their parent at 2, leaf 2 at
    # 3, leaf 3 at 4, then (1,1) at 5 and (2,0) at 6.
    assert [merkle.stored_hash_index(0, n) for n in range(4)] == [0, 1, 3, 4]
    assert merkle.stored_hash_index(1, 0) == 2
    assert merkle.stored_hash_index(1, 1) == 5
    assert merkle.stored_hash_index(2, 0) == 6
    for level in range(12):
        for n in range(200):
            assert merkle.split_stored_hash_index(merkle.stored_hash_index(level, n)) == (level, n)
    s = store([b"%d" % i for i in range(300)])
    assert merkle.stored_hash_count(300) == len(s.hashes)


# --- properties --------------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=600)
STORE = store([b"entry %d" % i for i in range(601)])


def _flip(proof: list[bytes], at: int) -> list[bytes]:
    bad = list(proof)
    bad[at] = bytes([bad[at][0] ^ 1]) + bad[at][1:]
    return bad


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=sizes)
def test_every_inclusion_proof_verifies_and_any_tampering_fails(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = merkle.tree_hash(size, STORE)
    leaf = merkle.leaf_hash(b"entry %d" % index)
    proof = merkle.inclusion_proof(index, size, STORE)
    merkle.verify_inclusion(leaf, index, size, proof, root)

    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, index, size, _flip(proof, at), root)
        with pytest.raises(merkle.ProofError, match="shorter"):
            merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(merkle.ProofError, match="longer"):
        merkle.verify_inclusion(leaf, index, size, [*proof, leaf], root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b"another entry"), index, size, proof, root)
    other = data.draw(st.integers(min_value=0, max_value=size - 1))
    if other != index:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, other, size, proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, index, size + 1, proof, merkle.tree_hash(size + 1, STORE))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), new=sizes)
def test_every_consistency_proof_verifies_and_any_tampering_fails(data: st.DataObject, new: int) -> None:
    old = data.draw(st.integers(min_value=0, max_value=new))
    old_root, new_root = merkle.tree_hash(old, STORE), merkle.tree_hash(new, STORE)
    proof = merkle.consistency_proof(old, new, STORE)
    merkle.verify_consistency(old, new, old_root, new_root, proof)

    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, old_root, new_root, _flip(proof, at))
        with pytest.raises(merkle.ProofError, match=r"shorter|empty"):
            merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
    with pytest.raises(merkle.ProofError, match=r"longer|must be empty"):
        merkle.verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    if old > 0:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, merkle.leaf_hash(b"forged"), new_root, proof)
    if old > 0:  # (every tree extends the empty tree: nothing to forge there)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, old_root, merkle.leaf_hash(b"forged"), proof)


def test_out_of_range_requests_are_errors() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(8, 8, CT_STORE)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(5, 4, CT_STORE)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(b"\x00" * 32, 0, 0, [], b"\x00" * 32)
    with pytest.raises(merkle.ProofError, match="32"):
        merkle.verify_inclusion(b"\x00" * 31, 0, 1, [], b"\x00" * 32)
