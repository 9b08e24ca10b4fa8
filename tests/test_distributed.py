from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from shardutil import write_wds

from seta_stream.builder import build_ledger
from seta_stream.ledger import Ledger

JOB = os.path.join(os.path.dirname(__file__), "jobs.py")
CFG = dict(policy="seta", prune_ratio=0.2, num_group=4, window_scale=0.5, epochs=3, delta=0.7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job(ledger: str, run: str, world: int, *extra: str, env: dict | None = None,  # type: ignore[type-arg]
        config: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:  # type: ignore[type-arg]  # fmt: skip
    cmd = [sys.executable, JOB, "--ledger", ledger, "--run", run, "--world-size", str(world),
           "--config", json.dumps(config or CFG), "--port", str(free_port()), *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture()
def uneven(tmp_path):  # type: ignore[no-untyped-def]
    """Seven shards of unequal size (not dividing evenly among 2 or 3 ranks)."""
    d = tmp_path / "data"
    paths = []
    start = 0
    for i, n in enumerate([120, 60, 60, 40, 30, 12, 6]):
        paths += write_wds(str(d), n, n, prefix=f"part{i}", start=start)
        start += n
    lp = str(tmp_path / "base.duckdb")
    build_ledger(paths, lp, progress=False)
    return paths, lp


def _copy(lp: str, name: str) -> str:
    import shutil

    out = os.path.join(os.path.dirname(lp), name)
    shutil.copy(lp, out)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_yield_equal_batches_and_share_one_ledger(uneven, tmp_path, world: int) -> None:
    paths, lp = uneven
    ref_ledger, ledger = _copy(lp, "ref.duckdb"), _copy(lp, f"w{world}.duckdb")
    r = job(ref_ledger, str(tmp_path / "ref"), 1)
    assert r.returncode == 0, r.stderr
    r = job(ledger, str(tmp_path / "run"), world, "--workers", "2", "--sync-grads")
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [json.load(open(tmp_path / "run" / f"steps-rank{k}.json")) for k in range(world)]
    for epoch in map(str, range(3)):
        counts = {tuple(s[epoch]) for s in steps}
        assert len(counts) == 1, counts  # every rank: the same number of batches, as announced
        n, announced = counts.pop()
        assert n == announced > 0
    for epoch in range(3):  # the selection does not depend on the number of ranks
        a = pq.read_table(tmp_path / "ref" / "manifests" / f"epoch={epoch:06d}" / "manifest.parquet")
        b = pq.read_table(tmp_path / "run" / "manifests" / f"epoch={epoch:06d}" / "manifest.parquet")
        if epoch == 0:
            assert a.equals(b)
        summary = json.load(open(tmp_path / "run" / "manifests" / f"epoch={epoch:06d}" / "summary.json"))
        assert summary["world_size"] == world and len(summary["assignment"]) == world
    with Ledger.open(ledger, read_only=True) as lg:
        rows = lg.epoch_rows()
        assert [r["epoch"] for r in rows if r["ingested_at"]] == [0, 1, 2]
        n_steps = [json.load(open(tmp_path / "run" / "steps-rank0.json"))[str(e)][0] for e in range(3)]
        assert [r["n_records"] for r in rows] == [world * 8 * s for s in n_steps]
    assert sorted(os.listdir(tmp_path / "run" / "losses" / "epoch=000000")) == [f"rank={k}.parquet" for k in range(world)]


def test_a_rank_whose_shards_keep_few_samples(tmp_path) -> None:
    """One big shard and three small ones over three ranks: one rank holds most kept samples,
    one holds very few; all yield the same number of full batches (the small one repeats its
    samples, the big one leaves some out), and the run completes."""
    d = tmp_path / "data"
    paths, start = [], 0
    for i, n in enumerate([200, 12, 6, 4]):
        paths += write_wds(str(d), n, n, prefix=f"part{i}", start=start)
        start += n
    lp = str(tmp_path / "few.duckdb")
    build_ledger(paths, lp, progress=False)
    cfg = dict(CFG, policy="random", prune_ratio=0.0, epochs=2)
    r = job(lp, str(tmp_path / "run"), 3, "--workers", "2", config=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.load(open(tmp_path / "run" / "manifests" / "epoch=000000" / "summary.json"))
    loads = sorted(sum(summary["shards"]["kept"][i] for i in ranks) for ranks in summary["assignment"])
    assert loads == [10, 12, 200]
    steps = [json.load(open(tmp_path / "run" / f"steps-rank{k}.json")) for k in range(3)]
    assert len({tuple(s["0"]) for s in steps}) == 1 and steps[0]["0"][0] == -(-222 // 24)
    with Ledger.open(lp, read_only=True) as lg:
        seen = lg.con.execute("SELECT count(*) FROM scores WHERE n_seen > 0").fetchall()[0][0]
    assert seen >= 22  # every sample of the small ranks was trained


def test_a_rank_that_dies_makes_the_others_fail_not_hang(uneven, tmp_path) -> None:
    paths, lp = uneven
    t0 = time.monotonic()
    r = job(_copy(lp, "die.duckdb"), str(tmp_path / "run"), 3, "--die-at", "0:1:2", "--timeout", "8")
    elapsed = time.monotonic() - t0
    assert r.returncode != 0
    codes = json.loads(r.stdout.strip().splitlines()[-1])["exitcodes"]
    assert codes[2] == 3 and codes[0] != 0 and codes[1] != 0
    assert "waiting for all 3 ranks at 'loss records of epoch 0' failed" in r.stderr
    assert elapsed < 120


def test_own_pipeline_with_the_stage_under_two_ranks(uneven, tmp_path) -> None:
    """wds.WebDataset(pruner.shard_urls(), nodesplitter=None) + pruner.stage, as the README shows:
    each rank streams its own shards, and every kept sample is recorded exactly once per epoch."""
    paths, lp = uneven
    ledger = _copy(lp, "own.duckdb")
    run = tmp_path / "run"
    r = job(ledger, str(run), 2, "--workers", "2", "--own-pipeline")
    assert r.returncode == 0, r.stderr[-3000:]
    for epoch in range(3):
        kept = pq.read_table(run / "manifests" / f"epoch={epoch:06d}" / "manifest.parquet").column("sample_id").to_pylist()
        parts = [pq.read_table(run / "losses" / f"epoch={epoch:06d}" / f"rank={k}.parquet") for k in range(2)]
        ids = [i for t in parts for i in t.column("sample_id").to_pylist()]
        assert sorted(ids) == sorted(kept)
        assert all(t.num_rows > 0 for t in parts)
    with Ledger.open(ledger, read_only=True) as lg:
        assert [r["epoch"] for r in lg.epoch_rows() if r["ingested_at"]] == [0, 1, 2]
