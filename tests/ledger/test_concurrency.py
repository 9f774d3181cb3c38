"""Several processes appending at once give one chain; a SIGKILL at any point loses nothing
acknowledged and leaves a log that verifies (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from ledger.entry import decode_entry
from tests.conftest import Cli, settings_env
from web.context import AppContext

APPENDER = r"""
import json, sys
from web.context import AppContext
ctx = AppContext.from_env()
tag, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    r = ctx.ledger.append("note", {"text": f"{tag}-{i}"}, "system")
    print(json.dumps({"index": r.index, "text": f"{tag}-{i}", "cp": r.checkpoint_size,
                      "ts": r.timestamp.status}), flush=True)
"""


def _spawn(env: dict[str, str], tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", APPENDER, tag, str(count)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_processes_append_one_gapless_chain(instance: AppContext, cli: Cli) -> None:
    env = settings_env(instance.settings)
    procs = [_spawn(env, f"p{k}", 25) for k in range(4)]
    receipts = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        receipts += [json.loads(line) for line in out.splitlines()]
    assert sorted(r["index"] for r in receipts) == list(range(100))
    for r in receipts:
        assert r["cp"] > r["index"] and r["ts"] == "granted"
        assert decode_entry(instance.ledger.entry(r["index"])).payload["text"] == r["text"]
    report = json.loads(cli("ledger", "verify", "--require-timestamps", "--json").stdout)
    assert report["ok"] and report["entries"] == 100


def test_sigkill_at_random_points_loses_nothing_acknowledged(
    instance: AppContext, cli: Cli, tmp_path: Path
) -> None:
    env = settings_env(instance.settings)
    rng = random.Random(1234)
    acknowledged: list[dict[str, object]] = []
    for round_ in range(4):
        procs = [_spawn(env, f"r{round_}p{k}", 1000) for k in range(2)]
        # Let them run a random while, then kill both without warning.
        target = rng.randint(2, 12)
        for p in procs:
            assert p.stdout is not None
            for _ in range(target):
                line = p.stdout.readline()
                if not line:
                    break
                acknowledged.append(json.loads(line))
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
    assert len(acknowledged) >= 8
    report = json.loads(cli("ledger", "verify", "--json").stdout)
    assert report["ok"], report
    latest = instance.ledger.latest_checkpoint()
    assert latest is not None
    for r in acknowledged:
        index = int(str(r["index"]))
        assert index < latest.size
        assert decode_entry(instance.ledger.entry(index)).payload["text"] == r["text"]
    # The log still takes appends after the crashes, and they are acknowledged quickly.
    receipt = json.loads(cli("ledger", "append-note", "after", "--json").stdout)
    assert receipt["checkpoint_size"] > receipt["index"]
