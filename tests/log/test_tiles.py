"""C2SP tlog-tiles: which tiles a tree has, their paths, contents and entry bundles."""

from __future__ import annotations

from collections import Counter

import pytest

from assay.log import merkle, tiles
from assay.log.tiles import Tile, TileError


def test_the_specs_example_tree_of_70000_entries() -> None:
    # tlog-tiles "Partial Tiles": 273 full level-0 tiles, a partial one of width 112, one full
    # level-1 tile, a partial one of width 17, and a partial level-2 tile of width 1.
    assert Counter((t.level, t.width) for t in tiles.tiles_for_size(70_000)) == {
        (0, 256): 273, (0, 112): 1, (1, 256): 1, (1, 17): 1, (2, 1): 1,
    }
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1".
    assert tiles.tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles.tiles_for_size(0) == []


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 1_234_067), "tile/0/x001/x234/067"),  # the spec's example index
        (Tile(0, 0), "tile/0/000"),
        (Tile(0, 1000), "tile/0/x001/000"),
        (Tile(1, 5, 17), "tile/1/005.p/17"),
        (Tile(63, 999), "tile/63/999"),
    ],
)
def test_tile_paths(tile: Tile, path: str) -> None:
    assert tile.path() == path
    assert tiles.parse_tile_path(path) == (tile, False)


def test_entry_bundle_paths() -> None:
    assert Tile(0, 1_234_067, 3).entries_path() == "tile/entries/x001/x234/067.p/3"
    assert tiles.parse_tile_path("tile/entries/x001/x234/067.p/3") == (Tile(0, 1_234_067, 3), True)
    with pytest.raises(TileError):
        Tile(1, 0).entries_path()


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",  # L with a leading zero
        "tile/64/000",  # L above 63
        "tile/0/1",  # N not 3 digits
        "tile/0/001/234",  # non-final element without x
        "tile/0/x000/234",  # a leading zero element is not the canonical spelling
        "tile/0/x001/x234",  # final element with x
        "tile/0/000.p/256",  # a partial tile is narrower than 256
        "tile/0/000.p/0",
        "tile/0/000.p/012",
        "tile/8/0/000",  # Go's sumdb path, with the height
        "tile/data/000",
        "/tile/0/000",
    ],
)
def test_malformed_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(TileError):
        tiles.parse_tile_path(path)


def test_tiles_hold_the_stored_hashes_and_give_them_back() -> None:
    size = 70_000
    store = merkle.MemoryHashStore()
    for i in range(size):
        store.append(b"%d" % i)
    served = {t: tiles.tile_data(t, store) for t in tiles.tiles_for_size(size)}
    level0 = served[Tile(0, 3)]
    assert len(level0) == 8192
    assert level0[:32] == merkle.leaf_hash(b"768")
    # A level-1 hash is the root of a full level-0 tile (MTH of 256 entries).
    sub = merkle.MemoryHashStore()
    for i in range(256, 512):
        sub.append(b"%d" % i)
    assert served[Tile(1, 0)][32:64] == merkle.tree_hash(256, sub)

    reader = tiles.tile_hash_reader(size, served.__getitem__)
    assert merkle.tree_hash(size, reader) == merkle.tree_hash(size, store)
    for index in (0, 255, 256, 65_535, 65_536, 69_999):
        assert merkle.inclusion_proof(index, size, reader) == merkle.inclusion_proof(index, size, store)
    for old in (1, 256, 1000, 65_536, 69_999):
        assert merkle.consistency_proof(old, size, reader) == merkle.consistency_proof(old, size, store)
    # A smaller tree reads from its own (narrower) partial tiles.
    small = {t: tiles.tile_data(t, store) for t in tiles.tiles_for_size(1000)}
    assert merkle.tree_hash(1000, tiles.tile_hash_reader(1000, small.__getitem__)) == merkle.tree_hash(1000, store)
    with pytest.raises(TileError):
        tiles.tile_hash_reader(1000, small.__getitem__)([merkle.stored_hash_index(0, 1000)])


def test_new_tiles_are_the_completed_ones_and_the_new_partials() -> None:
    assert tiles.new_tiles(0, 3) == [Tile(0, 0, 3)]
    assert tiles.new_tiles(3, 300) == [Tile(0, 0), Tile(0, 1, 44), Tile(1, 0, 1)]
    assert tiles.new_tiles(300, 300) == []
    assert tiles.new_tiles(300, 301) == [Tile(0, 1, 45)]  # level 1 is unchanged
    # Growing step by step writes every tile the final tree has.
    written: set[Tile] = set()
    for old in range(0, 1000, 37):
        written.update(tiles.new_tiles(old, min(old + 37, 1000)))
    assert set(tiles.tiles_for_size(1000)) <= written


def test_entry_bundles_are_uint16_length_prefixed() -> None:
    bundle = tiles.encode_bundle([b"", b"ab", b"\x00" * 300])
    assert bundle == b"\x00\x00" + b"\x00\x02ab" + b"\x01\x2c" + b"\x00" * 300
    assert tiles.decode_bundle(bundle, 3) == [b"", b"ab", b"\x00" * 300]
    with pytest.raises(TileError, match="uint16"):
        tiles.encode_bundle([b"x" * 65_536])
    for bad in (bundle[:-1], bundle + b"\x00", bundle[:1]):
        with pytest.raises(TileError):
            tiles.decode_bundle(bad, 3)
    with pytest.raises(TileError, match="not 2"):
        tiles.decode_bundle(bundle, 2)


def test_a_bundle_is_checked_against_its_level0_tile() -> None:
    store = merkle.MemoryHashStore()
    entries = [b"entry %d" % i for i in range(10)]
    for e in entries:
        store.append(e)
    tile = Tile(0, 0, 10)
    data = tiles.tile_data(tile, store)
    assert tiles.check_bundle(tiles.encode_bundle(entries), tile, data) == entries
    with pytest.raises(TileError, match="entry 4"):
        tiles.check_bundle(tiles.encode_bundle([*entries[:4], b"forged", *entries[5:]]), tile, data)
    with pytest.raises(TileError):
        tiles.split_tile(Tile(0, 0, 11), data)


@pytest.mark.parametrize("size", [66_000, 65_536, 256])
def test_a_reader_given_the_root_checks_every_tile_it_uses(size: int) -> None:
    store = merkle.MemoryHashStore()
    for i in range(size):
        store.append(b"%d" % i)
    root = merkle.tree_hash(size, store)
    served = {t: tiles.tile_data(t, store) for t in tiles.tiles_for_size(size)}
    reader = tiles.tile_hash_reader(size, served.__getitem__, root)
    for index in (0, size // 3, size - 1):
        assert reader([merkle.stored_hash_index(0, index)]) == [merkle.leaf_hash(b"%d" % index)]
        assert merkle.inclusion_proof(index, size, reader) == merkle.inclusion_proof(index, size, store)

    # Every tile above level 0, every partial tile, and a few full level-0 ones.
    for tile in [t for t in served if t.level or not t.full or t.n in (0, 100, 255)]:
        data = bytearray(served[tile])
        data[-1] ^= 1  # the tile's last hash, the one a growing tile changes
        bad = {**served, tile: bytes(data)}
        # Reading the first leaf under the altered tile, or the tree head, must fail.
        first = tile.n * tiles.TILE_WIDTH * tiles.TILE_WIDTH**tile.level
        with pytest.raises(TileError, match=r"do not hash to its root|does not hash to its entry"):
            tiles.tile_hash_reader(size, bad.__getitem__, root)([merkle.stored_hash_index(0, first)])
    with pytest.raises(TileError):
        tiles.tile_hash_reader(size, served.__getitem__, merkle.leaf_hash(b"another root"))([0])
