from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from shardutil import write_wds

from seta_stream import Pruner
from seta_stream.builder import build_ledger
from seta_stream.errors import ManifestError, RunError
from seta_stream.ledger import Ledger
from seta_stream.manifest import read_manifest
from seta_stream.query import run_sql

CFG = dict(policy="seta", prune_ratio=0.3, num_group=5, window_scale=0.6, epochs=4, delta=0.75)


def _fake_loss(ids: torch.Tensor, epoch: int) -> torch.Tensor:
    """A deterministic per-sample loss that falls with the epoch."""
    return ((ids % 17).float() + 1.0) / (epoch + 1)


def _train(pruner: Pruner, epochs: range, num_workers: int = 0, batch_size: int = 16) -> list[list[int]]:
    seen = []
    for e in epochs:
        loader = pruner.loader(e, batch_size=batch_size, num_workers=num_workers)
        steps = pruner.steps_this_epoch
        assert steps == len(loader)
        ids_epoch = []
        n = 0
        for batch in loader:
            ids = batch["__sample_id__"]
            assert ids.dtype == torch.int64 and len(ids) == batch_size  # every batch full
            ids_epoch += ids.tolist()
            pruner.update(_fake_loss(ids, e), batch)
            n += 1
        assert n == steps
        pruner.end_epoch()
        seen.append(ids_epoch)
    return seen


def test_the_loop_plans_streams_records_and_ingests(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    p = Pruner(run, ledger=lp, config=CFG)
    assert p.start_epoch == 0
    seen = _train(p, range(4), num_workers=2)
    for e, ids in enumerate(seen):
        m = read_manifest(run, e)
        assert m is not None
        planned = set(m.table().column("sample_id").to_pylist())
        # every planned sample is trained, but for at most one partial batch left out when the
        # workers' ceilings exceed the rank's steps; a few repeat to fill the last batches
        assert set(ids) <= planned and len(planned - set(ids)) < 16
        assert len(ids) - len(set(ids)) < 16 * 2
    with Ledger.open(lp, read_only=True) as lg:
        rows = lg.epoch_rows()
        scores = lg.con.execute("SELECT sample_id, loss, n_seen, last_epoch FROM scores ORDER BY sample_id").fetchall()
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3] and all(r["ingested_at"] for r in rows)
    last_epoch = {}
    for e, ids in enumerate(seen):
        for i in ids:
            last_epoch[i] = e
    for sid, loss, n_seen, last in scores:
        if sid in last_epoch:
            assert last == last_epoch[sid]
            assert loss == pytest.approx(float(_fake_loss(torch.tensor([sid]), last)[0]))
        else:
            assert n_seen == 0 and loss is None
    assert p.start_epoch == 4
    assert 0.0 < p.saved_fraction < 0.7


def test_restart_picks_up_where_the_run_stands(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    p = Pruner(run, ledger=lp, config=CFG)
    _train(p, range(2))
    q = Pruner(run, ledger=lp, config=CFG)
    assert q.start_epoch == 2
    # re-running an ingested epoch (restart from an older checkpoint) changes nothing
    before = run_sql(lp, "SELECT sum(loss), sum(n_seen) FROM scores")[1]
    _train(q, range(1, 2))
    assert run_sql(lp, "SELECT sum(loss), sum(n_seen) FROM scores")[1] == before
    _train(q, range(2, 4))
    with pytest.raises(RunError, match="epoch must be in"):
        q.loader(4, batch_size=8)


def test_skipping_an_epoch_is_refused(dataset, tmp_path) -> None:
    paths, lp = dataset
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=CFG)
    with pytest.raises(RunError, match="cannot plan epoch 2: epoch 1 was not ingested"):
        p.loader(2, batch_size=8)


def test_bad_batches_and_losses(dataset, tmp_path) -> None:
    paths, lp = dataset
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=CFG)
    with pytest.raises(RunError, match="no epoch started"):
        p.update(torch.ones(3), {"__sample_id__": torch.arange(3)})
    loader = p.loader(0, batch_size=8)
    batch = next(iter(loader))
    with pytest.raises(RunError, match="the prune stage is missing"):
        p.update(torch.ones(8), {"cls": batch["cls"]})
    with pytest.raises(RunError, match=r"loss has shape \(7,\) but the batch has 8 samples"):
        p.update(torch.ones(7), batch)
    with pytest.raises(RunError, match=r"loss has shape \(8, 2\)"):
        p.update(torch.ones(8, 2), batch)


def test_weighted_mean_and_batch_loss_scoring(dataset, tmp_path) -> None:
    paths, lp = dataset
    with Ledger.open(lp) as lg:  # scores below the mean for half the samples
        lg.ingest(99, np.arange(300), np.tile(np.array([0.1, 1.0], np.float32), 150), ema_alpha=0.9)
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=dict(policy="infobatch", prune_ratio=0.5, epochs=2))
    loader = p.loader(0, batch_size=10)
    batch = next(iter(loader))
    w = batch["__weight__"]
    assert w.dtype == torch.float32 and set(w.tolist()) <= {1.0, 2.0} and 2.0 in w.tolist()
    loss = torch.rand(10, requires_grad=True)
    out = p.update(loss, batch)
    assert out.item() == pytest.approx((loss * w).mean().item())
    out.backward()
    assert loss.grad is not None
    scalar = p.update(torch.tensor(2.5), batch)  # batch-loss scoring
    assert scalar.item() == 2.5


def test_nonfinite_losses_are_not_ingested(dataset, tmp_path) -> None:
    paths, lp = dataset
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=dict(policy="full", epochs=2))
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        for batch in p.loader(0, batch_size=50):
            loss = torch.ones(50)
            loss[0] = float("nan")
            p.update(loss, batch)
        p.end_epoch()
    with Ledger.open(lp, read_only=True) as lg:
        row = lg.epoch_rows()[0]
        assert row["n_nonfinite"] == 6 and row["n_records"] == 294
        assert lg.con.execute("SELECT count(*) FROM scores WHERE n_seen = 0").fetchall()[0][0] == 6


def test_sql_works_between_epochs_and_while_iterating(dataset, tmp_path) -> None:
    paths, lp = dataset
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=CFG)
    loader = p.loader(0, batch_size=16)
    for i, batch in enumerate(loader):
        if i == 0:
            assert run_sql(lp, "SELECT count(*) FROM samples")[1] == [(300,)]
        p.update(torch.ones(16), batch)
    p.end_epoch()
    cols, rows = run_sql(lp, "SELECT count(*) FROM sample_scores WHERE n_seen > 0", run_dir=str(tmp_path / "run"))
    assert rows[0][0] > 0
    _, hist = run_sql(lp, "SELECT epoch, rank, count(*) FROM losses GROUP BY ALL", run_dir=str(tmp_path / "run"))
    assert hist == [(0, 0, 224)]
    _, man = run_sql(lp, "SELECT epoch, count(*) FROM manifests GROUP BY epoch ORDER BY epoch", run_dir=str(tmp_path / "run"))
    m1 = read_manifest(str(tmp_path / "run"), 1)
    assert m1 is not None and man == [(0, 210), (1, m1.n_selected)]


def test_run_dir_of_another_ledger_or_config_is_refused(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    Pruner(run, ledger=lp, config=CFG)
    with pytest.raises(RunError, match="was written with another config"):
        Pruner(run, ledger=lp, config=dict(CFG, prune_ratio=0.5))
    other_paths = write_wds(str(tmp_path / "other"), 300, 50)
    other = str(tmp_path / "other.duckdb")
    build_ledger(other_paths, other, progress=False)
    with pytest.raises(RunError, match="was written with another ledger"):
        Pruner(run, ledger=other, config=CFG)
    # a second run on a ledger whose scores belong to the first run
    p = Pruner(run, ledger=lp, config=CFG)
    _train(p, range(1))
    with pytest.raises(RunError, match="belong to run"):
        Pruner(str(tmp_path / "run2"), ledger=lp, config=CFG)


def test_manifest_copied_from_another_ledger_is_refused(dataset, tmp_path) -> None:
    paths, lp = dataset
    run_a, run_b = str(tmp_path / "a"), str(tmp_path / "b")
    Pruner(run_a, ledger=lp, config=CFG).loader(0, batch_size=8)
    lp2 = str(tmp_path / "l2.duckdb")
    build_ledger(write_wds(str(tmp_path / "d2"), 300, 50), lp2, progress=False)
    Pruner(run_b, ledger=lp2, config=CFG)
    shutil.copytree(os.path.join(run_a, "manifests"), os.path.join(run_b, "manifests"))
    q = Pruner(run_b, ledger=lp2, config=CFG)
    with pytest.raises(ManifestError, match="planned from another ledger"):
        q.loader(0, batch_size=8)


def test_more_workers_than_shards_and_determinism(dataset, tmp_path) -> None:
    paths, lp = dataset
    lp2 = str(tmp_path / "copy.duckdb")
    shutil.copy(lp, lp2)
    a = _train(Pruner(str(tmp_path / "a"), ledger=lp, config=CFG), range(2), num_workers=0, batch_size=8)
    # another run, same inputs, on a copy of the ledger: identical batches
    with Ledger.open(lp2) as lg:
        lg.con.execute("DELETE FROM meta WHERE key = 'owner_run'")
    b = _train(Pruner(str(tmp_path / "b"), ledger=lp2, config=CFG), range(2), num_workers=0, batch_size=8)
    assert a == b
    c_lp = str(tmp_path / "c.duckdb")
    build_ledger(paths, c_lp, progress=False)
    p = Pruner(str(tmp_path / "c"), ledger=c_lp, config=CFG)
    loader = p.loader(0, batch_size=8, num_workers=8)  # 8 workers, 6 shards
    n = sum(1 for _ in loader)
    assert n == p.steps_this_epoch == len(loader)
    progress = json.load(open(os.path.join(str(tmp_path / "c"), "progress.json")))
    assert progress["n_samples"] == 300


def test_gradient_accumulation_records_every_micro_batch(dataset, tmp_path) -> None:
    paths, lp = dataset
    p = Pruner(str(tmp_path / "run"), ledger=lp, config=dict(policy="full", epochs=1))
    ids_seen = []
    for batch in p.loader(0, batch_size=20):
        for half in (slice(0, 10), slice(10, 20)):  # two micro-batches per step
            ids = batch["__sample_id__"][half]
            p.update(torch.ones(10), ids=ids)
            ids_seen += ids.tolist()
    report = p.end_epoch()
    assert report.records == 300 and sorted(ids_seen) == list(range(300))
