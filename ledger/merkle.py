"""RFC 9162 section 2.1 Merkle tree math: hashing, roots, proof node maths, proofs, verifiers.

Pure module (standard library only): values in, values out. It is split the way transparency-dev
splits it: the *which nodes* functions (``inclusion_ranges``, ``consistency_ranges``,
``range_subtrees``) need no storage; proof generation takes a callable that supplies the hash of a
perfect subtree, so the storage (tiles, memory, anything) stays outside.

A perfect subtree is named ``(level, index)``: it covers the leaves
``[index * 2**level, (index + 1) * 2**level)``. Leaf ranges are half-open ``(a, b)`` tuples.

The verifiers ``verify_inclusion`` and ``verify_consistency`` are the public API auditors call
from their own scripts: they return ``None`` or raise :class:`ledger.errors.ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "consistency_ranges",
    "fold_subtrees",
    "hash_children",
    "hash_leaf",
    "inclusion_proof",
    "inclusion_ranges",
    "range_subtrees",
    "root_from_inclusion",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH({}) = SHA-256() : the root of the empty tree (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

SubtreeHash = Callable[[int, int], bytes]
"""``subtree_hash(level, index)`` returns the hash of that perfect subtree."""


def hash_leaf(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 || data)`` (RFC 9162 section 2.1.1)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH over already-hashed leaves; ``EMPTY_ROOT`` for no leaves.

    Hashes level by level, carrying an odd last node up unchanged: that builds exactly the
    RFC 9162 tree (split at the largest power of two smaller than n) without recursion.
    """
    level: Sequence[bytes] = leaf_hashes
    if len(level) == 0:
        return EMPTY_ROOT
    sha = _sha256
    prefix = _NODE_PREFIX
    while len(level) > 1:
        it = iter(level)
        nxt = [sha(prefix + a + b).digest() for a, b in zip(it, it, strict=False)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{name} must not be negative, got {value}")


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose tree hashes make up PATH(index, D[size]), leaf to root.

    RFC 9162 section 2.1.3.1, unrolled: at each split the sibling range is recorded, then
    the walk descends into the side that holds ``index``. Requires ``0 <= index < size``.
    """
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ProofError(f"index {index} is out of range for tree size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges whose tree hashes make up PROOF(size1, D[size2]), in proof order.

    RFC 9162 section 2.1.4.1 (SUBPROOF), unrolled. ``size1 == size2`` gives ``[]``.
    Requires ``0 < size1 <= size2``.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree (size1 = 0) is meaningless")
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is larger than size2 ({size2})")
    outer: list[tuple[int, int]] = []
    lo, hi, m = 0, size2, size1
    whole = True  # SUBPROOF's flag b: are we still on the old tree's own root path?
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            outer.append((lo + k, hi))
            hi = lo + k
        else:
            outer.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    if not whole:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old subtree itself leads the proof.
        outer.append((lo, hi))
    outer.reverse()
    return outer


def range_subtrees(a: int, b: int) -> list[tuple[int, int]]:
    """Split the range ``[a, b)`` into perfect subtrees ``(level, index)``, largest first.

    This is how the range is shaped in RFC 9162 trees when ``a`` is a multiple of a power of
    two that is at least ``b - a`` (true of every range in a root or a proof): one perfect
    subtree per set bit of ``b - a``, left to right. ``a == b`` gives ``[]``.
    """
    _check_size("a", a)
    _check_size("b", b)
    n = b - a
    if n < 0:
        raise ProofError(f"range end {b} is before its start {a}")
    if n == 0:
        return []
    align = 1 << (n - 1).bit_length()  # smallest power of two >= n
    if a % align:
        raise ProofError(f"range [{a}, {b}) is not aligned as a subtree of an RFC 9162 tree")
    out: list[tuple[int, int]] = []
    pos = a
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes (as from ``range_subtrees``) into MTH of their range.

    Right fold: the smaller subtrees on the right are joined first. No hashes gives
    ``EMPTY_ROOT`` (the empty range).
    """
    if not hashes:
        return EMPTY_ROOT
    sha = _sha256
    prefix = _NODE_PREFIX
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = sha(prefix + hashes[i] + h).digest()
    return h


def _range_hash(a: int, b: int, subtree_hash: SubtreeHash) -> bytes:
    subtrees = range_subtrees(a, b)
    if len(subtrees) == 1:
        level, idx = subtrees[0]
        return subtree_hash(level, idx)
    return fold_subtrees([subtree_hash(level, idx) for level, idx in subtrees])


def inclusion_proof(index: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """Build PATH(index, D[size]); ``subtree_hash(level, index)`` supplies stored hashes.

    Costs O(log size) calls: only the sibling on the tree's right border can be imperfect.
    """
    return [_range_hash(a, b, subtree_hash) for a, b in inclusion_ranges(index, size)]


def consistency_proof(size1: int, size2: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """Build PROOF(size1, D[size2]); ``subtree_hash(level, index)`` supplies stored hashes."""
    return [_range_hash(a, b, subtree_hash) for a, b in consistency_ranges(size1, size2)]


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes long, expected {HASH_SIZE}")


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that ``proof`` implies for ``leaf_hash`` at ``index`` in a tree of ``size``.

    RFC 9162 section 2.1.3.2 steps 1-4 (without the final comparison with a known root).
    Raises ProofError for a malformed proof (wrong length or hash size, index >= size).
    """
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ProofError(f"index {index} is out of range for tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    fn = index
    sn = size - 1
    r = bytes(leaf_hash)
    sha = _sha256
    prefix = _NODE_PREFIX
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)
        if sn == 0:
            raise ProofError(f"inclusion proof is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = sha(prefix + p + r).digest()
            if not fn & 1:
                # The right border: climb past levels where this node has no right sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(prefix + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short: {len(proof)} hashes")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``size`` and ``root``.

    RFC 9162 section 2.1.3.2. Returns None; raises ProofError on any failure.
    """
    _check_hash("root", root)
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in tree size {size} gives root "
            f"{computed.hex()}, expected {bytes(root).hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (``size2``, ``root2``) extends the tree (``size1``, ``root1``).

    RFC 9162 section 2.1.4.2, with the peer suite's refusals: ``size1 == 0`` is refused (a
    proof from the empty tree proves nothing; the caller decides what an empty tree means);
    ``size1 == size2`` needs an empty proof and equal roots. Returns None; raises ProofError.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is larger than size2 ({size2})")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree (size1 = 0) is meaningless")
    if size1 == size2:
        if len(proof) != 0:
            raise ProofError(f"trees of equal size {size1} need an empty proof")
        if bytes(root1) != bytes(root2):
            raise ProofError(f"trees of equal size {size1} have different roots")
        return
    if len(proof) == 0:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)

    fn = size1 - 1
    sn = size2 - 1
    # Step 2: an old tree of power-of-two size is itself a node of the new tree; its root is
    # not sent, so start from it.
    start = 0
    if size1 & fn == 0:
        fr = fh = bytes(root1)
    else:
        fr = fh = bytes(proof[0])
        start = 1
    # Step 4: skip the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    sha = _sha256
    prefix = _NODE_PREFIX
    for i in range(start, len(proof)):
        c = proof[i]
        if sn == 0:
            raise ProofError(f"consistency proof is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = sha(prefix + c + fr).digest()
            fh = sha(prefix + c + fh).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            fh = sha(prefix + fh + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof is too short: {len(proof)} hashes")
    if fr != root1:
        raise ProofError(
            f"consistency proof gives old root {fr.hex()} for size {size1}, "
            f"expected {bytes(root1).hex()}"
        )
    if fh != root2:
        raise ProofError(
            f"consistency proof gives new root {fh.hex()} for size {size2}, "
            f"expected {bytes(root2).hex()}"
        )
