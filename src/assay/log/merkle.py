"""RFC 6962 Merkle tree hashing, proofs and their verification.

Hashing is RFC 6962 §2.1 with SHA-256 (the hash C2SP tlog-tiles fixes): a leaf hashes as
SHA-256(0x00 || entry), an interior node as SHA-256(0x01 || left || right), the empty tree as
SHA-256 of nothing. Proof generation follows RFC 6962 §2.1.1 (PATH) and §2.1.2 (SUBPROOF);
verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).

Stored hashes. A log keeps, for every complete subtree, its hash once, in the order in which
the subtrees complete: appending leaf n stores its leaf hash and then the hash of every subtree
that leaf completes. This is the layout of Go's golang.org/x/mod/sumdb/tlog (StoredHashIndex),
chosen so that a flat append-only array of 32-byte hashes (a table, a file) backs the log and
C2SP tiles are read straight out of it: the hash of the complete subtree at height `level`
with number `n` (covering leaves n*2**level .. (n+1)*2**level - 1) is at
`stored_hash_index(level, n)`. Everything that needs hashes asks a `HashReader` for them by
these indexes, in one batch, so a database or a tile store can answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32

# A reader returns the stored hashes at the given stored-hash indexes, in that order.
HashReader = Callable[[Sequence[int]], Sequence[bytes]]

EMPTY_TREE_HASH = hashlib.sha256(b"").digest()
"""RFC 6962 §2.1: MTH({}) = SHA-256() (Go's tlog.TreeHash returns all zeroes there instead)."""


class ProofError(ValueError):
    """A proof does not verify, or its inputs are out of range."""


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 §2.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: an interior node is SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split_point(n: int) -> int:
    """RFC 6962 §2.1: k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


# --- stored-hash layout (Go's tlog StoredHashIndex) -------------------------------------------


def stored_hash_index(level: int, n: int) -> int:
    """Where the hash of subtree `n` at height `level` sits in the append-only hash array.

    The leaf (level 0) with number m is preceded by its m leaves' hashes plus one stored hash
    per completed subtree above them; a level-`level` subtree's hash follows its last leaf
    (its rightmost level-0 descendant) and the `level - 1` hashes that leaf completed first.
    """
    if level < 0 or n < 0:
        raise ValueError(f"no stored hash at level {level}, number {n}")
    for _ in range(level):
        n = 2 * n + 1  # the subtree's rightmost descendant one level down
    index = 0
    while n > 0:  # hashes stored before leaf n: n leaves + n/2 + n/4 + ... parents
        index += n
        n >>= 1
    return index + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The inverse of `stored_hash_index`: (level, n) for a stored-hash index."""
    if index < 0:
        raise ValueError(f"negative stored hash index {index}")
    # Leaf n sits at 2n - popcount(n), so n is at least index / 2: walk up from there.
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        following = index_n + 1 + _trailing_zeros(n + 1)  # the next leaf's index
        if following > index:
            break
        n += 1
        index_n = following
    level = index - index_n
    return level, n >> level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of `size` leaves stores."""
    if size == 0:
        return 0
    count = stored_hash_index(0, size - 1) + 1
    i = size - 1
    while i & 1:  # the parents the last leaf completed
        count += 1
        i >>= 1
    return count


def stored_hashes_for_leaf(n: int, leaf: bytes, read: HashReader) -> list[bytes]:
    """The hashes to append when leaf number `n` (with leaf hash `leaf`) joins a tree of size n.

    They are the leaf hash and the hashes of the subtrees it completes, each combining the
    left sibling already stored with the right half just computed.
    """
    completed = _trailing_zeros(n + 1)
    siblings = [stored_hash_index(level, (n >> level) - 1) for level in range(completed)]
    left = read(siblings) if siblings else []
    _check_count(left, siblings)
    hashes = [leaf]
    h = leaf
    for sibling in left:
        h = node_hash(sibling, h)
        hashes.append(h)
    return hashes


class MemoryHashStore:
    """A `HashReader` over a list in memory: for tests, benchmarks and building tiles in bulk."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0

    def __call__(self, indexes: Sequence[int]) -> list[bytes]:
        return [self.hashes[i] for i in indexes]

    def append(self, entry: bytes) -> int:
        """Append one entry; returns its index in the log."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, leaf: bytes) -> int:
        index = self.size
        self.hashes.extend(stored_hashes_for_leaf(index, leaf, self))
        self.size += 1
        return index


# --- tree heads and proofs (RFC 6962 §2.1, §2.1.1, §2.1.2) ------------------------------------


def _subtree_indexes(lo: int, hi: int) -> list[int]:
    """Stored indexes of the complete subtrees that tile D[lo:hi], left to right.

    MTH(D[lo:hi]) for a range starting at a multiple of its split point is the right fold of
    these: the largest power-of-two-sized aligned block first, then the rest of the range.
    """
    indexes = []
    while lo < hi:
        size = 1 << ((hi - lo).bit_length() - 1)  # largest power of two <= hi - lo
        level = size.bit_length() - 1
        if lo & (size - 1):
            raise AssertionError(f"subtree D[{lo}:{hi}] is not aligned")  # a bug, not bad input
        indexes.append(stored_hash_index(level, lo >> level))
        lo += size
    return indexes


def _fold(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _check_count(got: Sequence[bytes], wanted: Sequence[int]) -> None:
    if len(got) != len(wanted):
        raise ValueError(f"hash reader returned {len(got)} hashes for {len(wanted)} indexes")


def _read_groups(groups: list[list[int]], read: HashReader) -> list[bytes]:
    """Read every group's hashes in one call and fold each group into one subtree hash."""
    flat = [i for group in groups for i in group]
    if not flat:
        return []
    hashes = read(flat)
    _check_count(hashes, flat)
    out = []
    at = 0
    for group in groups:
        out.append(_fold(hashes[at : at + len(group)]))
        at += len(group)
    return out


def tree_hash(size: int, read: HashReader) -> bytes:
    """RFC 6962 §2.1: MTH(D[0:size]), the root hash of the tree's first `size` leaves."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    if size == 0:
        return EMPTY_TREE_HASH
    return _read_groups([_subtree_indexes(0, size)], read)[0]


def _path(m: int, lo: int, hi: int, out: list[list[int]]) -> None:
    """RFC 6962 §2.1.1 PATH(m, D[lo:hi]), as subtree-index groups, leaf's sibling first."""
    if hi - lo == 1:
        return
    k = _split_point(hi - lo)
    if m < lo + k:
        _path(m, lo, lo + k, out)
        out.append(_subtree_indexes(lo + k, hi))
    else:
        _path(m, lo + k, hi, out)
        out.append(_subtree_indexes(lo, lo + k))


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """RFC 6962 §2.1.1: the audit path for leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    groups: list[list[int]] = []
    _path(index, 0, size, groups)
    return _read_groups(groups, read)


def _subproof(m: int, lo: int, hi: int, whole: bool, out: list[list[int]]) -> None:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[lo:hi], b), as subtree-index groups."""
    if m == hi:
        if not whole:
            out.append(_subtree_indexes(lo, hi))
        return
    k = _split_point(hi - lo)
    if m <= lo + k:
        _subproof(m, lo, lo + k, whole, out)
        out.append(_subtree_indexes(lo + k, hi))
    else:
        _subproof(m, lo + k, hi, False, out)
        out.append(_subtree_indexes(lo, lo + k))


def consistency_proof(old_size: int, new_size: int, read: HashReader) -> list[bytes]:
    """RFC 6962 §2.1.2: PROOF(old_size, D[0:new_size]); empty when old_size is 0 or new_size."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    groups: list[list[int]] = []
    _subproof(old_size, 0, new_size, True, groups)
    return _read_groups(groups, read)


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -----------------------------------------------


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-4: the root that `proof` leads to from `leaf` at `index`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "a proof hash")
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless `proof` puts `leaf` at `index` under `root`."""
    _check_hash(root, "the root hash")
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise ProofError(f"the inclusion proof for leaf {index} does not lead to the tree's root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless `proof` shows the old tree is a prefix of the new."""
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    for p in proof:
        _check_hash(p, "a proof hash")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        # §2.1.4.1: the proof between equal sizes is empty, and the roots must be the same.
        if proof:
            raise ProofError("a consistency proof between equal tree sizes must be empty")
        if old_root != new_root:
            raise ProofError("two trees of the same size have different root hashes")
        return
    if old_size == 0:
        # Every tree extends the empty one; §2.1.4.1 defines no proof for it.
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    # Step 1: a non-trivial proof is never empty.
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    # Step 2: if the old tree is a complete subtree, its root is the proof's implicit first node.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Steps 5-6.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the consistency proof does not lead to the root hash of the tree of size {old_size}")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the root hash of the tree of size {new_size}")
