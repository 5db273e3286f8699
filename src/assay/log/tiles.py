"""C2SP tlog-tiles: the static resources a tiled log serves, and reading hashes back from them.

Rules from the C2SP tlog-tiles spec, section "Merkle Tree" unless noted:

- tiles are height 8: a full tile holds 256 hashes (8,192 bytes); a level-0 tile holds leaf
  hashes, a level-l tile the hashes of full level-(l-1) tiles, so tile n at level l holds
  MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l]) for i in 0..255;
- paths are `tile/<L>/<N>[.p/<W>]`: L decimal 0..63, N in zero-padded 3-digit path elements of
  which all but the last begin with `x` (1234067 -> `x001/x234/067`), W 1..255 for partial
  tiles ("Partial Tiles": the partial tile at level l of a size-s tree has floor(s / 256**l)
  mod 256 hashes; empty tiles are never served);
- entry bundles ("Log entries") sit at `tile/entries/<N>[.p/<W>]` and are big-endian uint16
  length-prefixed entries, one per hash of the matching level-0 tile.

In stored-hash terms (see `merkle`), tile (L, N) holds the stored hashes at height 8*L for
subtree numbers N*256 .. N*256 + W - 1, which is Go's golang.org/x/mod/sumdb/tlog tiling at
height 8 (Go's paths add the height, `tile/8/L/N`; Go's `tile/8/data/N` record tiles are not
C2SP entry bundles).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from assay.log.merkle import (
    HASH_SIZE,
    HashReader,
    leaf_hash,
    node_hash,
    split_stored_hash_index,
    stored_hash_index,
)
from assay.log.merkle import tree_hash as merkle_tree_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # "big-endian uint16 length-prefixed"

_PATH = re.compile(
    r"tile/(?:(?P<level>0|[1-9][0-9]?)|(?P<entries>entries))"
    r"/(?P<n>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<w>[1-9][0-9]{0,2}))?"
)


class TileError(ValueError):
    """A malformed tile path, tile or entry bundle."""


@dataclass(frozen=True, order=True)
class Tile:
    """Tile number `n` at `level`, `width` hashes wide (256 for a full tile)."""

    level: int
    n: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL:
            raise TileError(f"tile level {self.level} is not between 0 and {MAX_LEVEL}")
        if self.n < 0:
            raise TileError(f"tile number {self.n} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} is not between 1 and {TILE_WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """`tile/<L>/<N>[.p/<W>]`."""
        return f"tile/{self.level}/{_encode_n(self.n)}{self._suffix()}"

    def entries_path(self) -> str:
        """`tile/entries/<N>[.p/<W>]`: the entry bundle behind this (level-0) tile."""
        if self.level != 0:
            raise TileError("only level-0 tiles have entry bundles")
        return f"tile/entries/{_encode_n(self.n)}{self._suffix()}"

    def _suffix(self) -> str:
        return "" if self.full else f".p/{self.width}"

    def stored_indexes(self) -> list[int]:
        """The stored-hash indexes of this tile's hashes, in order."""
        height = TILE_HEIGHT * self.level
        start = self.n * TILE_WIDTH
        return [stored_hash_index(height, start + i) for i in range(self.width)]


def _encode_n(n: int) -> str:
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def parse_tile_path(path: str) -> tuple[Tile, bool]:
    """Parse `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`: (tile, is an entry bundle).

    Strict: only the one spelling the spec allows for each tile parses (no extra leading
    zeroes in L or W, no leading `000` path elements, W below 256).
    """
    m = _PATH.fullmatch(path)
    if m is None:
        raise TileError(f"{path!r} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")
    n = int("".join(part.lstrip("x") for part in m["n"].split("/")))
    width = int(m["w"]) if m["w"] else TILE_WIDTH
    if m["w"] and width >= TILE_WIDTH:
        raise TileError(f"{path!r}: a partial tile is 1 to {TILE_WIDTH - 1} hashes wide")
    is_entries = m["entries"] is not None
    tile = Tile(0 if is_entries else int(m["level"]), n, width)
    canonical = tile.entries_path() if is_entries else tile.path()
    if canonical != path:
        raise TileError(f"{path!r} is not the canonical path of its tile ({canonical!r})")
    return tile, is_entries


# --- which tiles a tree has -------------------------------------------------------------------


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile of a tree of `size` leaves: its full tiles and one partial per level."""
    return new_tiles(0, size)


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles to write when the tree grows from `old_size` to `new_size` leaves.

    Full tiles that the growth completed, and the partial tiles of `new_size` (which C2SP
    tlog-tiles requires for every size a checkpoint is issued for), level by level.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"a tree does not grow from {old_size} to {new_size}")
    tiles: list[Tile] = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_hashes = old_size >> (TILE_HEIGHT * level)  # hashes at this tiling level
        new_hashes = new_size >> (TILE_HEIGHT * level)
        tiles.extend(Tile(level, n) for n in range(old_hashes // TILE_WIDTH, new_hashes // TILE_WIDTH))
        width = new_hashes % TILE_WIDTH
        if width and new_hashes > old_hashes:
            tiles.append(Tile(level, new_hashes // TILE_WIDTH, width))
        level += 1
    return tiles


def tile_for_stored_index(index: int, size: int) -> tuple[Tile, int, int]:
    """The tile of a size-`size` tree that holds stored hash `index`: (tile, first, past).

    The hash is MTH of tile hashes [first:past] (a single hash where it is the tile's own
    level; a fold of 2**k of them where it is k levels above it).
    """
    level, n = split_stored_hash_index(index)
    tile_level, within = divmod(level, TILE_HEIGHT)
    first = n << within  # index, at the tile's level, of the hash's leftmost descendant
    past = (n + 1) << within
    number, first = divmod(first, TILE_WIDTH)
    past -= number * TILE_WIDTH
    hashes_at_level = size >> (TILE_HEIGHT * tile_level)
    width = min(TILE_WIDTH, hashes_at_level - number * TILE_WIDTH)
    if width < past:
        raise TileError(f"stored hash {index} is not in a tree of size {size}")
    return Tile(tile_level, number, width), first, past


def _tile_subtree_hash(hashes: Sequence[bytes]) -> bytes:
    """The hash of a power-of-two run of hashes inside a tile (the levels a tile implies)."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


# --- tile contents ------------------------------------------------------------------------------


def tile_data(tile: Tile, read: HashReader) -> bytes:
    """The tile's bytes: its hashes, concatenated, read from the log's stored hashes."""
    indexes = tile.stored_indexes()
    hashes = read(indexes)
    if len(hashes) != len(indexes):
        raise ValueError(f"hash reader returned {len(hashes)} hashes for {len(indexes)} indexes")
    return b"".join(hashes)


def split_tile(tile: Tile, data: bytes) -> list[bytes]:
    """The tile's hashes; the data must be exactly `width` hashes long."""
    if len(data) != tile.width * HASH_SIZE:
        raise TileError(f"tile {tile.path()} is {len(data)} bytes, not {tile.width * HASH_SIZE}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def tile_hash_reader(size: int, fetch: Callable[[Tile], bytes], root: bytes | None = None) -> HashReader:
    """A `HashReader` that answers from the tiles of a size-`size` tree, fetched by `fetch`.

    With `root` (the root hash of a verified checkpoint of that size), every tile is checked
    before its hashes are used: the partial tiles of `size`, which hold the tree head's
    subtrees, against `root`; each full tile against its hash in the tile above (C2SP
    tlog-tiles "Merkle Tree": a level-l hash is the MTH of a full level-(l-1) tile). A client
    reading entries or leaf hashes from tiles needs that. Without `root` nothing is checked
    here, which suffices where what is built from the hashes (a tree head, a proof) is then
    checked against a signed checkpoint.
    """
    tiles: dict[Tile, list[bytes]] = {}

    def load(tile: Tile) -> list[bytes]:
        if tile in tiles:
            return tiles[tile]
        hashes = split_tile(tile, fetch(tile))
        if root is not None and tile.full:
            above = tile.level + 1
            number = tile.n // TILE_WIDTH
            width = min(TILE_WIDTH, (size >> (TILE_HEIGHT * above)) - number * TILE_WIDTH)
            if _tile_subtree_hash(hashes) != load(Tile(above, number, width))[tile.n % TILE_WIDTH]:
                raise TileError(f"tile {tile.path()} does not hash to its entry in the tile above")
        tiles[tile] = hashes
        return hashes

    def read_unchecked(indexes: Sequence[int]) -> list[bytes]:
        out = []
        for index in indexes:
            tile, first, past = tile_for_stored_index(index, size)
            out.append(_tile_subtree_hash(load(tile)[first:past]))
        return out

    checked_head = root is None

    def read(indexes: Sequence[int]) -> list[bytes]:
        nonlocal checked_head
        if not checked_head:
            # The tree head's subtrees lie in the partial tiles of `size` and cover all of
            # their hashes, so a matching root vouches for every partial tile.
            if merkle_tree_hash(size, read_unchecked) != root:
                raise TileError(f"the tiles of the tree of size {size} do not hash to its root")
            checked_head = True
        return read_unchecked(indexes)

    return read


# --- entry bundles ------------------------------------------------------------------------------


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes."""
    out = bytearray()
    count = 0
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"a log entry of {len(entry)} bytes does not fit a uint16 length prefix")
        out += struct.pack(">H", len(entry))
        out += entry
        count += 1
    if not 1 <= count <= TILE_WIDTH:
        raise TileError(f"an entry bundle holds 1 to {TILE_WIDTH} entries, not {count}")
    return bytes(out)


def decode_bundle(data: bytes, width: int = TILE_WIDTH) -> list[bytes]:
    """The entries of a bundle, which must hold exactly `width` of them and nothing more."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError(f"the entry bundle ends inside the length of entry {len(entries)}")
        (length,) = struct.unpack_from(">H", data, at)
        at += 2
        if at + length > len(data):
            raise TileError(f"entry {len(entries)} of the bundle is cut short")
        entries.append(data[at : at + length])
        at += length
    if len(entries) != width:
        raise TileError(f"the entry bundle holds {len(entries)} entries, not {width}")
    return entries


def check_bundle(bundle: bytes, tile: Tile, data: bytes) -> list[bytes]:
    """The bundle's entries, after checking each hashes to its level-0 tile's hash."""
    if tile.level != 0:
        raise TileError("entry bundles are checked against level-0 tiles")
    entries = decode_bundle(bundle, tile.width)
    for i, (entry, h) in enumerate(zip(entries, split_tile(tile, data), strict=True)):
        if leaf_hash(entry) != h:
            raise TileError(f"entry {tile.n * TILE_WIDTH + i} does not hash to its tile's leaf hash")
    return entries
