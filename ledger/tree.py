"""Reading and growing the stored Merkle tree.

Stored hashes: the leaf hashes (in ``ledger_entries``) and one row per perfect subtree of
256**k leaves at levels 8, 16, ... (``ledger_nodes``). These are the tlog-tiles of C2SP: tile
``(L, t)`` is the 256 stored hashes at level 8L with indexes ``t*256 .. t*256+255``. Any other
node is computed from one tile (at most 255 hash operations), so a proof at any size costs
O(log n) reads, and full tiles, being immutable, are cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from ledger import merkle
from ledger.models import Entry, Node

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


def _tile_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """All complete levels of a tile from its bottom row: levels[r][i] = node (r, i)."""
    levels = [list(hashes)]
    row = levels[0]
    hc = merkle.hash_children
    while len(row) > 1:
        row = [hc(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        levels.append(row)
    return levels


class TileCache:
    """An LRU of computed tiles. Stored hashes never change, so a tile read at any width stays
    right; a partial tile is replaced when a wider read of it is made."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._tiles: OrderedDict[tuple[int, int], list[list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], need: int = TILE_WIDTH) -> list[list[bytes]] | None:
        """The cached tile if it holds at least ``need`` hashes at its bottom row."""
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None or len(tile[0]) < need:
                return None
            self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple[int, int], tile: list[list[bytes]]) -> None:
        with self._lock:
            old = self._tiles.get(key)
            if old is not None and len(old[0]) >= len(tile[0]):
                return
            self._tiles[key] = tile
            self._tiles.move_to_end(key)
            while len(self._tiles) > self.capacity:
                self._tiles.popitem(last=False)


def read_row(conn: Connection, level: int, start: int, stop: int) -> list[bytes]:
    """Stored hashes at ``level`` (0 or a multiple of 8) with indexes in [start, stop)."""
    if level == 0:
        stmt = (
            select(Entry.leaf_hash).where(Entry.idx >= start, Entry.idx < stop).order_by(Entry.idx)
        )
    else:
        stmt = (
            select(Node.hash)
            .where(Node.level == level, Node.idx >= start, Node.idx < stop)
            .order_by(Node.idx)
        )
    return [bytes(h) for h in conn.execute(stmt).scalars().all()]


class TreeReader:
    """Node hashes of the tree of a given size, read through ``conn``.

    ``size`` bounds what may be read: asking for a node outside the first ``size`` leaves is a
    programming error.
    """

    def __init__(self, conn: Connection, size: int, cache: TileCache | None = None) -> None:
        self.conn = conn
        self.size = size
        self.cache = cache
        self._partial: dict[tuple[int, int], list[list[bytes]]] = {}

    def _tile(self, tile_level: int, tile_index: int, need: int) -> list[list[bytes]]:
        key = (tile_level, tile_index)
        if self.cache is not None:
            hit = self.cache.get(key, need)
            if hit is not None:
                return hit
        local = self._partial.get(key)
        if local is not None and len(local[0]) >= need:
            return local
        base = tile_level * TILE_HEIGHT
        start = tile_index * TILE_WIDTH
        # Read everything that exists below the tree size, so neighbours reuse this read.
        span = 1 << base
        available = min(TILE_WIDTH, self.size // span - start)
        row = read_row(self.conn, base, start, start + available)
        if len(row) < need:
            raise RuntimeError(
                f"tile {tile_level}/{tile_index}: {len(row)} stored hashes, {need} needed"
            )
        tile = _tile_levels(row)
        if self.cache is not None:
            self.cache.put(key, tile)
        else:
            self._partial[key] = tile
        return tile

    def subtree_hash(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree covering leaves [index*2**level, (index+1)*2**level)."""
        tile_level, r = divmod(level, TILE_HEIGHT)
        first = index << r  # index of its leftmost descendant in the tile's bottom row
        tile_index, offset = divmod(first, TILE_WIDTH)
        need = offset + (1 << r)
        tile = self._tile(tile_level, tile_index, need)
        return tile[r][offset >> r]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if size == 0:
            return merkle.EMPTY_ROOT
        subtrees = merkle.range_subtrees(0, size)
        return merkle.fold_subtrees([self.subtree_hash(lv, i) for lv, i in subtrees])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size if size is None else size, self.subtree_hash)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(
            size1, self.size if size2 is None else size2, self.subtree_hash
        )


def store_completed_nodes(conn: Connection, old_size: int, new_size: int) -> None:
    """Insert the level-8k nodes that growing the tree from old_size to new_size completed.

    Runs inside the appending transaction, after the new entries were inserted, so the reads
    see them. Each node is written exactly once (insert-only).
    """
    level = TILE_HEIGHT
    while (1 << level) <= new_size:
        span = 1 << level
        rows = []
        for i in range(old_size // span, new_size // span):
            child = read_row(conn, level - TILE_HEIGHT, i * TILE_WIDTH, (i + 1) * TILE_WIDTH)
            rows.append({"level": level, "idx": i, "hash": merkle.root_of(child)})
        if rows:
            conn.execute(insert(Node), rows)
        level += TILE_HEIGHT
