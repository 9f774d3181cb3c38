"""The ledger service on a real database: appends, checkpoints, timestamps, proofs."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace

import pytest

from ledger import merkle
from ledger.entry import ZERO_HASH, decode_entry
from ledger.errors import CheckpointNotFound, EntryNotFound, LedgerError, ProofError
from ledger.instance import open_ledger, trust_anchors
from ledger.note import Checkpoint, NoteVerifier, open_note
from ledger.tsa import verify_response
from tests.ledger.reference import mth_of_leaf_hashes as reference_root
from web.context import AppContext


def test_append_is_acknowledged_with_signed_timestamped_checkpoint(instance: AppContext) -> None:
    ledger = instance.ledger
    receipt = ledger.append("note", {"text": "hello"}, "system")
    assert receipt.index == 0
    assert receipt.checkpoint_size >= 1
    assert receipt.timestamp.status == "granted"
    cp = ledger.checkpoint_at(receipt.checkpoint_size)
    note = open_note(cp.note, [NoteVerifier.from_vkey(ledger.signer.vkey())])
    body = Checkpoint.from_text(note.text)
    assert body.origin == instance.settings.log_origin
    assert body.size == cp.size and body.root == cp.root
    data = ledger.entry(0)
    assert merkle.hash_leaf(data) == receipt.leaf_hash
    entry = decode_entry(data)
    assert entry.prev == ZERO_HASH and entry.payload == {"text": "hello"}
    token = ledger.token(cp.size)
    assert token is not None
    info = verify_response(
        token.response,
        digest=hashlib.sha256(cp.note).digest(),
        trust_anchors=trust_anchors(instance.settings),
    )
    assert info.gen_time == token.gen_time == receipt.timestamp.time


def test_chain_links_each_entry_to_the_previous_leaf(instance: AppContext) -> None:
    for i in range(5):
        instance.ledger.append_durable("note", {"text": str(i)}, "system")
    prev = ZERO_HASH
    for i in range(5):
        data = instance.ledger.entry(i)
        assert decode_entry(data).prev == prev
        prev = merkle.hash_leaf(data).hex()


def test_tree_root_and_proofs_match_the_reference_across_tile_boundaries(
    instance: AppContext,
) -> None:
    ledger = instance.ledger
    n = 600  # crosses two 256-leaf tiles
    ledger.sequencer.append_many([("note", "system", {"text": f"e{i}"}) for i in range(n)])
    leaves = [merkle.hash_leaf(ledger.entry(i)) for i in range(n)]
    for size in (1, 2, 255, 256, 257, 511, 512, 513, 600):
        assert ledger.root(size) == reference_root(leaves[:size]), size
    cp = ledger.checkpoint()
    assert cp.size == n and cp.root == reference_root(leaves)
    for index in (0, 1, 255, 256, 300, 511, 512, 599):
        size, proof = ledger.prove_inclusion(index)
        merkle.verify_inclusion(leaves[index], index, size, proof, cp.root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[index], index ^ 1, size, proof, cp.root)


def test_consistency_between_stored_checkpoints(instance: AppContext) -> None:
    ledger = instance.ledger
    sizes = []
    for batch in (3, 260, 1, 300):
        ledger.sequencer.append_many([("note", "system", {"text": "x"})] * batch)
        sizes.append(ledger.checkpoint().size)
    for old in sizes:
        for new in sizes:
            if old <= new:
                proof = ledger.prove_consistency(old, new)
                merkle.verify_consistency(
                    old, new, proof, ledger.checkpoint_at(old).root, ledger.checkpoint_at(new).root
                )
    with pytest.raises(CheckpointNotFound):
        ledger.prove_consistency(2, sizes[-1])


def test_empty_log_checkpoint_has_the_empty_root(instance: AppContext) -> None:
    cp = instance.ledger.checkpoint()
    assert cp.size == 0 and cp.root == merkle.EMPTY_ROOT
    assert instance.ledger.checkpoint().size == 0  # no duplicate


def test_unknown_entries_and_checkpoints_are_clear_errors(instance: AppContext) -> None:
    with pytest.raises(EntryNotFound):
        instance.ledger.entry(0)
    with pytest.raises(CheckpointNotFound):
        instance.ledger.checkpoint_at(None)
    instance.ledger.append("note", {"text": "a"}, "system")
    with pytest.raises(CheckpointNotFound):
        instance.ledger.checkpoint_at(7)
    with pytest.raises(EntryNotFound):
        instance.ledger.prove_inclusion(5)


def test_bad_entries_are_refused_and_consume_no_index(instance: AppContext) -> None:
    with pytest.raises(LedgerError):
        instance.ledger.append("no-such-type", {}, "system")
    with pytest.raises(LedgerError):
        instance.ledger.append("note", {"x": float("nan")}, "system")
    assert instance.ledger.size() == 0
    assert instance.ledger.append("note", {"text": "ok"}, "system").index == 0


def test_group_commit_from_many_threads_gives_one_gapless_chain(instance: AppContext) -> None:
    ledger = instance.ledger
    results: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(25):
            r = ledger.append_durable("note", {"text": f"{k}-{i}"}, "system")
            with lock:
                results.append(r.index)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(400))
    prev = ZERO_HASH
    texts = set()
    for i in range(400):
        entry = decode_entry(ledger.entry(i))
        assert entry.prev == prev
        prev = merkle.hash_leaf(ledger.entry(i)).hex()
        texts.add(entry.payload["text"])
    assert len(texts) == 400


def test_checkpoints_are_batched_to_the_interval(instance: AppContext) -> None:
    ledger = open_ledger(
        replace(instance.settings, checkpoint_interval=0.5), engine=instance.engine
    )
    receipts = []

    def worker() -> None:
        receipts.append(ledger.append("note", {"text": "t"}, "system"))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sizes = {r.checkpoint_size for r in receipts}
    # Twelve appends at once share a few checkpoints, not one each.
    assert len(ledger.checkpoints()) < 6
    for r in receipts:
        assert r.checkpoint_size > r.index
    assert max(sizes) == 12
