from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import webdataset as wds
from shardutil import write_wds

from seta_stream.config import PolicyConfig
from seta_stream.errors import ShardError
from seta_stream.ledger import Ledger
from seta_stream.manifest import Manifest, plan_epoch
from seta_stream.stage import prune_stage


def _plan(lp: str, run: str, policy: str = "random", p: float = 0.5) -> Manifest:
    with Ledger.open(lp) as lg:
        return plan_epoch(lg, run, 0, PolicyConfig(policy=policy, prune_ratio=p, epochs=3))


def _expected(m: Manifest) -> list[tuple[str, int]]:
    t = m.table()
    return list(zip(t.column("key").to_pylist(), t.column("sample_id").to_pylist()))


def test_stage_in_webdataset_and_datapipeline(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    m = _plan(lp, run)
    stage = prune_stage(run, 0)
    got = [(s["__key__"], int(s["__sample_id__"])) for s in wds.WebDataset(paths, shardshuffle=False).compose(stage)]
    assert got == _expected(m)
    assert stage.state.kept == m.n_selected and stage.state.pruned == 300 - m.n_selected
    assert stage.state.shards_done == 6
    stage2 = prune_stage(run, 0)
    pipe = wds.DataPipeline(wds.SimpleShardList(paths), wds.tarfile_to_samples(), stage2, wds.decode(),
                            wds.to_tuple("cls", "__sample_id__", "__weight__"))  # fmt: skip
    rows = list(pipe)
    assert [int(i) for _, i, _ in rows] == [i for _, i in _expected(m)]
    assert all(isinstance(c, int) for c, _, _ in rows)  # decoded after pruning
    assert all(w == np.float32(1.0) for *_, w in rows)


def test_stage_with_dataloader_workers(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    m = _plan(lp, run, "infobatch", 0.5)
    with Ledger.open(lp) as lg:  # give InfoBatch something below the mean
        lg.ingest(0, np.arange(300), np.linspace(0, 1, 300).astype(np.float32), ema_alpha=0.9)
    with Ledger.open(lp) as lg:
        m = plan_epoch(lg, run, 1, PolicyConfig(policy="infobatch", prune_ratio=0.5, epochs=3))
    stage = prune_stage(run, 1)
    ds = wds.WebDataset(paths, shardshuffle=False, workersplitter=wds.split_by_worker).compose(stage)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=3)
    got = sorted((s["__key__"], int(s["__sample_id__"]), float(s["__weight__"])) for s in loader)
    t = m.table()
    want = sorted(zip(t.column("key").to_pylist(), t.column("sample_id").to_pylist(),
                      [float(x) for x in t.column("weight").to_pylist()]))  # fmt: skip
    assert got == want
    assert {w for *_, w in got} == {1.0, 2.0}


def test_each_worker_reads_only_its_shards_rows(dataset, tmp_path, monkeypatch) -> None:
    """A worker reads the manifest rows of the shards it streams (webdataset deals worker w
    every Nth shard; rows are read a few shards ahead along that stride), never the others'."""
    import pyarrow.parquet as pq

    paths, lp = dataset
    run = str(tmp_path / "run")
    _plan(lp, run)
    log = tmp_path / "reads"
    log.mkdir()
    orig = pq.ParquetFile.read_row_groups

    def spy(self, row_groups, *a, **k):  # type: ignore[no-untyped-def]
        with open(log / str(os.getpid()), "a") as f:
            f.write(" ".join(map(str, row_groups)) + "\n")
        return orig(self, row_groups, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    stage = prune_stage(run, 0)
    ds = wds.WebDataset(paths, shardshuffle=False, workersplitter=wds.split_by_worker).compose(stage)
    assert sum(1 for _ in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)) == 150
    seen = [sorted({int(x) for line in f.read_text().split("\n") for x in line.split()}) for f in log.iterdir()]
    assert sorted(seen) == [[0, 2, 4], [1, 3, 5]]  # row group i holds shard i: all six keep samples


def _manifest_keeping(lp: str, run: str, ids: list[int]) -> Manifest:
    """A manifest (epoch 0) that keeps exactly ``ids``."""
    from seta_stream.manifest import ShardInfo, epoch_dir, write_manifest

    with Ledger.open(lp) as lg:
        rows = lg.sample_rows(np.array(ids, np.int64))
        shards = lg.shards()
        fp = lg.fingerprint()
    return write_manifest(
        epoch_dir(run, 0), shard_index=rows.column("shard_id").to_numpy(), keys=rows.column("key"),
        sample_ids=np.array(ids, np.int64), pos=rows.column("pos"), offsets=rows.column("byte_offset"),
        nbytes=rows.column("nbytes"), weights=np.ones(len(ids), np.float32),
        shards=[ShardInfo(s.name, s.url, s.n_samples, s.seekable, s.nbytes) for s in shards],
        header={"epoch": 0, "policy": "static", "params": {}, "seed": 0, "ledger_fingerprint": fp,
                "n_samples": 300, "stats": {}},
    )  # fmt: skip


def test_a_worker_whose_shards_keep_nothing_does_not_crash(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    keep = list(range(0, 10)) + list(range(50, 55))  # shards 0 and 1 only
    m = _manifest_keeping(lp, run, keep)
    assert m.shard_kept == [10, 5, 0, 0, 0, 0]
    stage = prune_stage(run, 0)
    ds = wds.WebDataset(paths, shardshuffle=False, workersplitter=wds.split_by_worker).compose(stage)
    got = sorted(int(s["__sample_id__"]) for s in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=6))
    assert got == keep
    assert list(wds.WebDataset(paths[3:], shardshuffle=False).compose(prune_stage(run, 0))) == []


def test_changed_shard_is_an_error_naming_it(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    _plan(lp, run, "full", 0.0)
    write_wds(os.path.dirname(paths[0]), 310, 62)  # same names, more samples per shard
    stage = prune_stage(run, 0)
    with pytest.raises(ShardError, match=r"shard train-000000\.tar: .*changed since the ledger was built"):
        list(wds.WebDataset(paths[:1], shardshuffle=False).compose(stage))


def test_shard_missing_from_the_ledger(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    _plan(lp, run)
    other = write_wds(str(tmp_path / "other"), 10, 10, prefix="extra")
    with pytest.raises(ShardError, match=r"extra-000000\.tar: this shard is not in the ledger"):
        list(wds.WebDataset(other, shardshuffle=False).compose(prune_stage(run, 0)))


def test_shuffle_before_the_stage_is_refused(dataset, tmp_path) -> None:
    paths, lp = dataset
    run = str(tmp_path / "run")
    _plan(lp, run)
    ds = wds.WebDataset(paths, shardshuffle=False).shuffle(200, initial=200).compose(prune_stage(run, 0))
    with pytest.raises(ShardError):
        list(ds)
