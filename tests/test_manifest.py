from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from shardutil import write_wds

from seta_stream.builder import build_ledger
from seta_stream.config import PolicyConfig
from seta_stream.errors import ManifestError
from seta_stream.ledger import Ledger
from seta_stream.manifest import ShardInfo, epoch_dir, plan_epoch, read_manifest, write_manifest


@pytest.fixture()
def ledger_path(tmp_path) -> str:
    paths = write_wds(str(tmp_path / "d"), 700, 100)
    lp = str(tmp_path / "l.duckdb")
    build_ledger(paths, lp, progress=False, workers=1)
    return lp


def _set_losses(lp: str, seed: int = 0) -> None:
    with Ledger.open(lp) as lg:
        n = lg.num_samples()
        loss = np.random.default_rng(seed).gamma(2.0, 1.0, n)
        lg.con.execute("UPDATE scores SET loss = l.loss, ema = l.loss, n_seen = 1 FROM (SELECT unnest(?) AS loss, "
                       "generate_subscripts(?, 1) - 1 AS sid) l WHERE scores.sample_id = l.sid",
                       [loss.tolist(), loss.tolist()])  # fmt: skip


def test_manifest_rows_groups_and_summary(ledger_path: str, tmp_path) -> None:
    _set_losses(ledger_path)
    cfg = PolicyConfig(policy="seta", prune_ratio=0.3, epochs=5)
    run = str(tmp_path / "run")
    with Ledger.open(ledger_path) as lg:
        m = plan_epoch(lg, run, 2, cfg, world_size=3, batch_size=16)
        rows = lg.con.execute("SELECT sample_id, key FROM samples ORDER BY sample_id").fetchall()
        epochs = lg.epoch_rows()
    t = m.table()
    ids = t.column("sample_id").to_numpy()
    assert np.all(np.diff(ids) > 0) and len(ids) == m.n_selected
    keys = dict(rows)
    assert t.column("key").to_pylist() == [keys[i] for i in ids]
    assert t.column("shard").to_pylist() == [f"train-{i // 100:06d}.tar" for i in ids]
    assert list(t.column("pos").to_numpy()) == [i % 100 for i in ids]
    # one row group per shard holding kept samples, in shard order
    f = pq.ParquetFile(os.path.join(m.directory, "manifest.parquet"))
    kept = m.shard_kept
    assert f.num_row_groups == sum(1 for k in kept if k)
    for i, name in enumerate(m.shard_names):
        r = m.rows(name)
        assert len(r) == kept[i]
        assert all(k == keys[s] for k, s in zip(r.keys, r.sample_ids))
    s = m.summary
    assert s["epoch"] == 2 and s["policy"] == "seta" and s["params"] == cfg.to_dict() and s["seed"] == 0
    assert s["shards"]["total"] == [100] * 7 and sum(kept) == m.n_selected
    assign = m.assignment(3)
    assert sorted(i for r in assign for i in r) == [i for i, k in enumerate(kept) if k]
    assert s["steps_per_rank"] == -(-m.n_selected // (3 * 16))
    assert epochs[0]["epoch"] == 2 and epochs[0]["n_selected"] == m.n_selected


def test_same_inputs_give_byte_identical_manifests_and_replanning_changes_nothing(ledger_path: str, tmp_path) -> None:
    _set_losses(ledger_path, seed=4)
    cfg = PolicyConfig(policy="infobatch", prune_ratio=0.5, epochs=5)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with Ledger.open(ledger_path) as lg:
        plan_epoch(lg, a, 1, cfg, world_size=2, batch_size=8)
        plan_epoch(lg, b, 1, cfg, world_size=2, batch_size=8)
        for name in ("manifest.parquet", "summary.json"):
            assert open(os.path.join(epoch_dir(a, 1), name), "rb").read() == open(
                os.path.join(epoch_dir(b, 1), name), "rb"
            ).read()
        before = {n: os.stat(os.path.join(epoch_dir(a, 1), n)).st_mtime_ns for n in os.listdir(epoch_dir(a, 1))}
        m = plan_epoch(lg, a, 1, cfg, world_size=2, batch_size=8)
        after = {n: os.stat(os.path.join(epoch_dir(a, 1), n)).st_mtime_ns for n in os.listdir(epoch_dir(a, 1))}
        assert before == after and m.epoch == 1
        # a kill between the two renames leaves a Parquet file and no summary: planned again, same bytes
        os.remove(os.path.join(epoch_dir(b, 1), "summary.json"))
        assert read_manifest(b, 1) is None
        plan_epoch(lg, b, 1, cfg, world_size=2, batch_size=8)
    assert open(os.path.join(epoch_dir(a, 1), "summary.json"), "rb").read() == open(
        os.path.join(epoch_dir(b, 1), "summary.json"), "rb"
    ).read()


def test_manifest_from_another_ledger_or_config_is_refused(ledger_path: str, tmp_path) -> None:
    cfg = PolicyConfig(policy="random", prune_ratio=0.5, epochs=5)
    run = str(tmp_path / "run")
    with Ledger.open(ledger_path) as lg:
        plan_epoch(lg, run, 0, cfg)
        with pytest.raises(ManifestError, match="planned with other parameters \\(prune_ratio\\)"):
            plan_epoch(lg, run, 0, PolicyConfig(policy="random", prune_ratio=0.4, epochs=5))
    other = tmp_path / "o"
    paths = write_wds(str(other), 700, 100)
    olp = str(tmp_path / "other.duckdb")
    build_ledger(paths, olp, progress=False)
    with Ledger.open(olp) as lg, pytest.raises(ManifestError, match="planned from another ledger"):
        plan_epoch(lg, run, 0, cfg)


def test_ids_above_2_pow_31_survive_a_manifest(tmp_path) -> None:
    base = 2**31 + 12345
    ids = np.arange(base, base + 40, 2, dtype=np.int64)
    n = len(ids)
    m = write_manifest(
        str(tmp_path / "m"),
        shard_index=np.repeat(np.arange(2, dtype=np.int32), n // 2),
        keys=[f"k{i}" for i in range(n)],
        sample_ids=ids,
        pos=np.arange(n, dtype=np.int32),
        offsets=np.arange(n, dtype=np.int64) * 2**33,
        nbytes=np.full(n, 1024, np.int64),
        weights=np.ones(n, np.float32),
        shards=[ShardInfo("a.tar", "/a.tar", 10, True), ShardInfo("b.tar", "/b.tar", 10, True)],
        header={"epoch": 0, "policy": "full", "params": {}, "seed": 0, "ledger_fingerprint": "x",
                "n_samples": 3 * 2**31, "stats": {}},
    )  # fmt: skip
    back = np.concatenate([m.rows("a.tar").sample_ids, m.rows("b.tar").sample_ids])
    assert back.dtype == np.int64 and np.array_equal(back, ids)
    assert m.rows("b.tar").offsets[-1] == (n - 1) * 2**33
