"""A naive RFC 6962 / RFC 9162 reference, written straight from the recursive definitions.

Slow on purpose: the code under test is checked against it. A tree is anything with a
``size`` and ``mth(lo, hi)`` giving MTH(D[lo:hi]); the recursive PATH and PROOF below work on
windows ``[lo, hi)`` of it, which is exactly the RFC's D[k:n] sub-list notation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two k with k < n <= 2k (n > 1), found by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree(Protocol):
    """A list of leaves D[0:size] seen through its tree hashes."""

    size: int

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        ...


def mth_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, by the RFC's recursion on sub-lists."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = split_point(n)
    return node_hash(mth_of_leaf_hashes(hashes[:k]), mth_of_leaf_hashes(hashes[k:]))


class ListTree:
    """A small tree over explicit leaf data; every MTH is recomputed recursively."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.leaf_hashes = [leaf_hash(d) for d in self.leaves]
        self.size = len(self.leaves)
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) (memoised: the exhaustive tests ask for the same windows often)."""
        key = (lo, hi)
        if key not in self._memo:
            self._memo[key] = mth_of_leaf_hashes(self.leaf_hashes[lo:hi])
        return self._memo[key]

    def subtree_hash(self, level: int, index: int) -> bytes:
        """The perfect subtree (level, index), as a storage would supply it."""
        lo = index << level
        if lo + (1 << level) > self.size:
            raise IndexError(f"subtree ({level}, {index}) is not complete in size {self.size}")
        return self.mth(lo, lo + (1 << level))


class SparseTree:
    """A genuine tree of up to 2**64 leaves in which only a few leaves differ.

    Every leaf is ``leaf_hash(b"filler")`` except the leaves named in ``special``. A window
    without special leaves is hashed from its length alone (memoised), so the recursion stays
    at O(log n) depth per special leaf; the hashes are nevertheless the true RFC hashes.
    """

    FILLER = leaf_hash(b"filler")

    def __init__(self, size: int, special: Sequence[int]) -> None:
        self.size = size
        self.special = sorted(set(special))
        self._plain: dict[int, bytes] = {}

    def leaf(self, i: int) -> bytes:
        """The leaf hash at index i."""
        if i in self.special:
            return leaf_hash(b"special %d" % i)
        return self.FILLER

    def _has_special(self, lo: int, hi: int) -> bool:
        return any(lo <= s < hi for s in self.special)

    def _mth_plain(self, n: int) -> bytes:
        if n not in self._plain:
            if n == 1:
                self._plain[n] = self.FILLER
            else:
                k = split_point(n)
                self._plain[n] = node_hash(self._mth_plain(k), self._mth_plain(n - k))
        return self._plain[n]

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) by the RFC recursion, with special-free windows memoised."""
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if not self._has_special(lo, hi):
            return self._mth_plain(n)
        if n == 1:
            return self.leaf(lo)
        k = split_point(n)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def subtree_hash(self, level: int, index: int) -> bytes:
        """The perfect subtree (level, index), as a storage would supply it."""
        lo = index << level
        if lo + (1 << level) > self.size:
            raise IndexError(f"subtree ({level}, {index}) is not complete in size {self.size}")
        return self.mth(lo, lo + (1 << level))


def path_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """PATH(m, D[lo:hi]) as absolute leaf ranges (RFC 9162 section 2.1.3.1)."""
    n = hi - lo
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*path_ranges(m, lo, lo + k), (lo + k, hi)]
    return [*path_ranges(m - k, lo + k, hi), (lo, lo + k)]


def subproof_ranges(m: int, lo: int, hi: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[lo:hi], b) as absolute leaf ranges (RFC 9162 section 2.1.4.1)."""
    n = hi - lo
    if m == n:
        return [] if b else [(lo, hi)]
    k = split_point(n)
    if m <= k:
        return [*subproof_ranges(m, lo, lo + k, b), (lo + k, hi)]
    return [*subproof_ranges(m - k, lo + k, hi, False), (lo, lo + k)]


def proof_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as leaf ranges."""
    return subproof_ranges(m, 0, n, True)


def path(m: int, tree: Tree) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof hashes."""
    return [tree.mth(a, b) for a, b in path_ranges(m, 0, tree.size)]


def proof(m: int, tree: Tree) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof hashes."""
    return [tree.mth(a, b) for a, b in proof_ranges(m, tree.size)]


def root(tree: Tree) -> bytes:
    """MTH(D[0:n])."""
    return tree.mth(0, tree.size)
