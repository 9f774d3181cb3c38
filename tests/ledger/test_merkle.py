"""Tests of ledger.merkle: known answers, the peer suite, and properties against the reference."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import LedgerError, ProofError
from tests.ledger import reference as ref

VECTORS = Path(__file__).parents[1] / "vectors"
PEER = VECTORS / "transparency-dev-merkle"
PEER_CASES = sorted(PEER.rglob("*.json"))

SMALL_SIZES = range(1, 71)


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def _small_tree(size: int) -> ref.ListTree:
    return ref.ListTree([b"leaf %d" % i for i in range(size)])


# --- hashing and roots ---------------------------------------------------------------------


def test_empty_root_and_hasher_known_answers() -> None:
    data = json.loads((VECTORS / "rfc6962.json").read_text())
    assert data["roots_by_size"]["0"] == merkle.EMPTY_ROOT.hex()
    assert merkle.hash_leaf(b"L123456").hex() == data["hasher"]['leaf("L123456")']
    assert merkle.hash_children(b"N123", b"N456").hex() == data["hasher"]['node("N123","N456")']
    # Domain separation: a leaf never hashes like a node over the same bytes.
    assert merkle.hash_leaf(b"N123N456") != merkle.hash_children(b"N123", b"N456")


def test_rfc6962_roots_by_size() -> None:
    data = json.loads((VECTORS / "rfc6962.json").read_text())
    leaves = [bytes.fromhex(x) for x in data["leaves_hex"]]
    hashes = [merkle.hash_leaf(x) for x in leaves]
    assert len(data["roots_by_size"]) == len(leaves) + 1
    for size_text, want in data["roots_by_size"].items():
        size = int(size_text)
        assert merkle.root_of(hashes[:size]).hex() == want
        subtrees = merkle.range_subtrees(0, size)
        tree = ref.ListTree(leaves[:size])
        assert merkle.fold_subtrees([tree.subtree_hash(lv, i) for lv, i in subtrees]).hex() == want


def test_rfc6962_listed_proofs() -> None:
    data = json.loads((VECTORS / "rfc6962.json").read_text())
    leaves = [bytes.fromhex(x) for x in data["leaves_hex"]]
    assert data["inclusion"] and data["consistency"]
    for case in data["inclusion"]:
        tree = ref.ListTree(leaves[: case["tree_size"]])
        proof = [bytes.fromhex(x) for x in case["proof"]]
        leaf = bytes.fromhex(case["leaf_hash"])
        root = bytes.fromhex(case["root"])
        assert leaf == merkle.hash_leaf(leaves[case["index"]])
        assert merkle.inclusion_proof(case["index"], case["tree_size"], tree.subtree_hash) == proof
        merkle.verify_inclusion(leaf, case["index"], case["tree_size"], proof, root)
    for case in data["consistency"]:
        tree = ref.ListTree(leaves[: case["size2"]])
        proof = [bytes.fromhex(x) for x in case["proof"]]
        r1, r2 = bytes.fromhex(case["root1"]), bytes.fromhex(case["root2"])
        got = merkle.consistency_proof(case["size1"], case["size2"], tree.subtree_hash)
        assert got == proof
        merkle.verify_consistency(case["size1"], case["size2"], proof, r1, r2)


@pytest.mark.parametrize("size", range(71))
def test_root_of_matches_reference(size: int) -> None:
    tree = _small_tree(size)
    assert merkle.root_of(tree.leaf_hashes) == ref.mth_of_leaf_hashes(tree.leaf_hashes)
    assert merkle.root_of(tuple(tree.leaf_hashes)) == ref.root(tree)


def test_root_of_larger_tree() -> None:
    hashes = [merkle.hash_leaf(b"%d" % i) for i in range(3001)]
    for n in (1000, 1024, 1025, 3001):
        assert merkle.root_of(hashes[:n]) == ref.mth_of_leaf_hashes(hashes[:n])


# --- the peer suite (transparency-dev/merkle testdata) --------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def test_peer_suite_is_complete() -> None:
    assert len(PEER_CASES) == 196
    kinds = {p.relative_to(PEER).parts[0] for p in PEER_CASES}
    assert kinds == {"inclusion", "consistency"}


@pytest.mark.parametrize(
    "path", PEER_CASES, ids=[str(p.relative_to(PEER).with_suffix("")) for p in PEER_CASES]
)
def test_peer_case(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    proof = [_b64(x) for x in case["proof"] or []]
    kind = path.relative_to(PEER).parts[0]

    def run() -> None:
        if kind == "inclusion":
            merkle.verify_inclusion(
                _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"])
            )
        else:
            merkle.verify_consistency(
                case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"])
            )

    if case["wantErr"]:
        with pytest.raises(ProofError) as info:
            run()
        assert info.value.message
        assert isinstance(info.value, LedgerError)
    else:
        run()


# --- exhaustive small trees against the reference -------------------------------------------


@pytest.mark.parametrize("size", SMALL_SIZES)
def test_inclusion_every_index(size: int) -> None:
    tree = _small_tree(size)
    root = ref.root(tree)
    for index in range(size):
        ranges = merkle.inclusion_ranges(index, size)
        assert ranges == ref.path_ranges(index, 0, size)
        proof = merkle.inclusion_proof(index, size, tree.subtree_hash)
        assert proof == ref.path(index, tree)
        leaf = tree.leaf_hashes[index]
        merkle.verify_inclusion(leaf, index, size, proof, root)
        assert merkle.root_from_inclusion(leaf, index, size, proof) == root


@pytest.mark.parametrize("size2", SMALL_SIZES)
def test_consistency_every_pair(size2: int) -> None:
    tree = _small_tree(size2)
    root2 = ref.root(tree)
    for size1 in range(1, size2 + 1):
        assert merkle.consistency_ranges(size1, size2) == ref.proof_ranges(size1, size2)
        proof = merkle.consistency_proof(size1, size2, tree.subtree_hash)
        assert proof == ref.proof(size1, tree)
        merkle.verify_consistency(size1, size2, proof, tree.mth(0, size1), root2)


def _assert_inclusion_mutants_fail(
    tree: ref.Tree, leaf: bytes, index: int, proof: list[bytes]
) -> None:
    size = tree.size
    root = ref.root(tree)
    bad: list[tuple[int, int, list[bytes], bytes]] = []
    for i in range(len(proof)):
        for bit in (0, 131, 255):
            bad.append((index, size, [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]], root))
    if proof:
        bad.append((index, size, proof[:-1], root))
        bad.append((index, size, proof[1:], root))
    bad.append((index, size, [*proof, proof[0] if proof else leaf], root))
    bad.append((index, size, [root, *proof], root))
    for other in {index - 1, index + 1, index ^ 1, index ^ 2} - {index}:
        if 0 <= other < size:
            bad.append((other, size, proof, root))
    bad.append((index, size, proof, _flip(root, 200)))
    for args in bad:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, *args)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(_flip(leaf, 7), index, size, proof, root)


@pytest.mark.parametrize("size", SMALL_SIZES)
def test_inclusion_mutations_rejected(size: int) -> None:
    tree = _small_tree(size)
    for index in range(size):
        proof = merkle.inclusion_proof(index, size, tree.subtree_hash)
        _assert_inclusion_mutants_fail(tree, tree.leaf_hashes[index], index, proof)
    # A proof made for this size does not prove the same leaf in a tree of another size.
    if size >= 2:
        smaller = _small_tree(size - 1)
        for index in range(size - 1):
            proof = merkle.inclusion_proof(index, size, tree.subtree_hash)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(
                    tree.leaf_hashes[index], index, size - 1, proof, ref.root(smaller)
                )


def _assert_consistency_mutants_fail(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    bad: list[tuple[int, int, list[bytes], bytes, bytes]] = []
    for i in range(len(proof)):
        for bit in (0, 131, 255):
            bad.append(
                (size1, size2, [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]], root1, root2)
            )
    if proof:
        bad.append((size1, size2, proof[:-1], root1, root2))
        bad.append((size1, size2, proof[1:], root1, root2))
        bad.append((size1, size2, [*proof, proof[0]], root1, root2))
        bad.append((size1, size2, [root1, *proof], root1, root2))
        bad.append((size1, size2, proof, root2, root1))
    else:
        bad.append((size1, size2, [root1], root1, root2))
    bad.append((size1, size2, proof, _flip(root1, 9), root2))
    bad.append((size1, size2, proof, root1, _flip(root2, 9)))
    for args in bad:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)


@pytest.mark.parametrize("size2", range(1, 41))
def test_consistency_mutations_rejected(size2: int) -> None:
    tree = _small_tree(size2)
    root2 = ref.root(tree)
    for size1 in range(1, size2 + 1):
        proof = merkle.consistency_proof(size1, size2, tree.subtree_hash)
        root1 = tree.mth(0, size1)
        _assert_consistency_mutants_fail(size1, size2, proof, root1, root2)
        # The same proof, claimed for other sizes (with those trees' true roots), fails.
        for s1, s2 in ((size1 - 1, size2), (size1 + 1, size2), (size1, size2 + 1)):
            if 1 <= s1 <= s2 and (s1, s2) != (size1, size2):
                other = _small_tree(s2)
                if s1 == s2 and not proof:
                    continue  # an empty proof between equal sizes is the genuine proof there
                with pytest.raises(ProofError):
                    merkle.verify_consistency(s1, s2, proof, other.mth(0, s1), ref.root(other))


# --- random large trees ---------------------------------------------------------------------

LARGE = st.integers(min_value=1, max_value=2**40)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), size=LARGE)
def test_ranges_large_sizes(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    size1 = data.draw(st.integers(min_value=1, max_value=size), label="size1")
    ranges = merkle.inclusion_ranges(index, size)
    assert ranges == ref.path_ranges(index, 0, size)
    cranges = merkle.consistency_ranges(size1, size)
    assert cranges == ref.proof_ranges(size1, size)
    for a, b in [*ranges, *cranges, (0, size)]:
        subtrees = merkle.range_subtrees(a, b)
        # Contiguous, left to right, strictly shrinking perfect subtrees covering [a, b).
        pos = a
        last_level = 65
        for level, idx in subtrees:
            assert idx << level == pos
            assert level < last_level
            last_level = level
            pos += 1 << level
        assert pos == b
        assert len(subtrees) == bin(b - a).count("1")


def _synthetic(level: int, index: int) -> bytes:
    # A storage stand-in that makes up a distinct hash for every (level, index).
    return hashlib.sha256(b"synthetic %d %d" % (level, index)).digest()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=LARGE)
def test_synthetic_storage_calls_only_complete_subtrees(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    size1 = data.draw(st.integers(min_value=1, max_value=size), label="size1")
    asked: list[tuple[int, int]] = []

    def storage(level: int, idx: int) -> bytes:
        assert (idx + 1) << level <= size
        asked.append((level, idx))
        return _synthetic(level, idx)

    proof = merkle.inclusion_proof(index, size, storage)
    assert len(proof) == len(merkle.inclusion_ranges(index, size))
    # O(log n) reads: the path plus at most one imperfect sibling on the right border.
    assert len(asked) <= 2 * size.bit_length() + 1
    asked.clear()
    cproof = merkle.consistency_proof(size1, size, storage)
    assert len(cproof) == len(merkle.consistency_ranges(size1, size))
    assert len(asked) <= 3 * size.bit_length() + 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), size=st.integers(min_value=1, max_value=2**40))
def test_inclusion_large_round_trip(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    noise = data.draw(st.integers(min_value=0, max_value=size - 1), label="noise")
    tree = ref.SparseTree(size, [index, size - 1, noise])
    proof = merkle.inclusion_proof(index, size, tree.subtree_hash)
    assert proof == ref.path(index, tree)
    leaf = tree.leaf(index)
    root = ref.root(tree)
    merkle.verify_inclusion(leaf, index, size, proof, root)
    for i in range(len(proof)):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(
                leaf, index, size, [*proof[:i], _flip(proof[i], 77), *proof[i + 1 :]], root
            )
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, index, size, [*proof, root], root)
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(_flip(leaf, 1), index, size, proof, root)
    if index + 1 < size:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index + 1, size, proof, root)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), size2=st.integers(min_value=2, max_value=2**40))
def test_consistency_large_round_trip(data: st.DataObject, size2: int) -> None:
    size1 = data.draw(st.integers(min_value=1, max_value=size2 - 1), label="size1")
    noise = data.draw(st.integers(min_value=0, max_value=size2 - 1), label="noise")
    tree = ref.SparseTree(size2, [size1 - 1, size1, size2 - 1, noise])
    proof = merkle.consistency_proof(size1, size2, tree.subtree_hash)
    assert proof == ref.proof(size1, tree)
    root1, root2 = tree.mth(0, size1), ref.root(tree)
    merkle.verify_consistency(size1, size2, proof, root1, root2)
    _assert_consistency_mutants_fail(size1, size2, proof, root1, root2)


# --- argument checking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "args"),
    [
        (merkle.inclusion_ranges, (5, 5)),
        (merkle.inclusion_ranges, (-1, 5)),
        (merkle.inclusion_ranges, (0, 0)),
        (merkle.consistency_ranges, (0, 5)),
        (merkle.consistency_ranges, (6, 5)),
        (merkle.consistency_ranges, (-1, 5)),
        (merkle.range_subtrees, (3, 7)),
        (merkle.range_subtrees, (4, 3)),
        (merkle.range_subtrees, (2, 5)),
        (merkle.inclusion_ranges, (True, 5)),
        (merkle.inclusion_ranges, ("1", 5)),
    ],
)
def test_bad_arguments_raise_proof_error(func: Any, args: tuple[Any, ...]) -> None:
    with pytest.raises(ProofError) as info:
        func(*args)
    assert info.value.message


def test_range_helpers_edge_cases() -> None:
    assert merkle.range_subtrees(0, 0) == []
    assert merkle.range_subtrees(8, 8) == []
    assert merkle.fold_subtrees([]) == merkle.EMPTY_ROOT
    assert merkle.range_subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.range_subtrees(16, 19) == [(1, 8), (0, 18)]
    assert merkle.consistency_ranges(7, 7) == []
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    assert merkle.fold_subtrees([a, b, c]) == merkle.hash_children(a, merkle.hash_children(b, c))


def test_verifiers_refuse_malformed_hashes() -> None:
    tree = _small_tree(6)
    root = ref.root(tree)
    proof = merkle.inclusion_proof(2, 6, tree.subtree_hash)
    leaf = tree.leaf_hashes[2]
    for bad_leaf, bad_proof, bad_root in (
        (leaf[:31], proof, root),
        (leaf, [*proof[:1], proof[1] + b"\x00", *proof[2:]], root),
        (leaf, proof, root + b"\x00"),
        (leaf, proof, b""),
    ):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(bad_leaf, 2, 6, bad_proof, bad_root)
    cproof = merkle.consistency_proof(3, 6, tree.subtree_hash)
    with pytest.raises(ProofError, match="bytes long"):
        merkle.verify_consistency(3, 6, [cproof[0][:16], *cproof[1:]], tree.mth(0, 3), root)
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 6, cproof, tree.mth(0, 3)[:16], root)


def test_error_names_the_mismatch() -> None:
    tree = _small_tree(5)
    root = ref.root(tree)
    proof = merkle.inclusion_proof(1, 5, tree.subtree_hash)
    with pytest.raises(ProofError, match=root.hex()[:16]):
        merkle.verify_inclusion(tree.leaf_hashes[0], 1, 5, proof, root)


def test_messages_say_what_is_wrong() -> None:
    tree = _small_tree(6)
    root = ref.root(tree)
    leaf = tree.leaf_hashes[2]
    proof = merkle.inclusion_proof(2, 6, tree.subtree_hash)
    with pytest.raises(ProofError, match="too long"):
        merkle.root_from_inclusion(leaf, 2, 6, [*proof, leaf])
    with pytest.raises(ProofError, match="too short"):
        merkle.root_from_inclusion(leaf, 2, 6, proof[:-1])
    with pytest.raises(ProofError, match="root is 33 bytes long"):
        merkle.verify_inclusion(leaf, 2, 6, proof, root + b"\x00")
    cproof = merkle.consistency_proof(3, 6, tree.subtree_hash)
    with pytest.raises(ProofError, match="too long"):
        merkle.verify_consistency(3, 6, [*cproof, leaf], tree.mth(0, 3), root)
    with pytest.raises(ProofError, match="too short"):
        merkle.verify_consistency(3, 6, cproof[:-1], tree.mth(0, 3), root)
    with pytest.raises(ProofError, match="root2 is 31 bytes long"):
        merkle.verify_consistency(3, 6, cproof, tree.mth(0, 3), root[:31])
    with pytest.raises(ProofError, match="empty tree"):
        merkle.verify_consistency(0, 6, cproof, merkle.EMPTY_ROOT, root)
