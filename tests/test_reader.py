from __future__ import annotations

import gzip
import os
import shutil

import pytest
import webdataset as wds
from shardutil import write_wds

from seta_stream.builder import build_ledger
from seta_stream.config import PolicyConfig
from seta_stream.errors import ShardError
from seta_stream.ledger import Ledger
from seta_stream.manifest import Manifest, plan_epoch
from seta_stream.reader import FastReader
from seta_stream.stage import prune_stage


def _setup(paths: list[str], tmp, policy: str = "random", p: float = 0.5) -> tuple[str, Manifest]:  # type: ignore[no-untyped-def]
    lp = str(tmp / "l.duckdb")
    build_ledger(paths, lp, progress=False, workers=1, rebuild=True)
    run = str(tmp / f"run-{policy}")
    shutil.rmtree(run, ignore_errors=True)
    with Ledger.open(lp) as lg:
        m = plan_epoch(lg, run, 0, PolicyConfig(policy=policy, prune_ratio=p, epochs=1))
    return run, m


def _fast(run: str, m: Manifest, fallback: bool = True) -> list[dict]:  # type: ignore[type-arg]
    reader = FastReader(run, fallback=fallback)
    out = []
    for i, url in enumerate(m.shard_urls):
        if m.shard_kept[i]:
            out += list(reader(m, i, url))
    return out


def _stock(run: str, urls: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return list(wds.WebDataset(urls, shardshuffle=False).compose(prune_stage(run, 0)))


def test_same_sample_dicts_as_webdataset_for_every_fixture(fixture_shards, tmp_path) -> None:
    for name, paths in fixture_shards.items():
        d = tmp_path / name
        d.mkdir()
        for policy, p in (("full", 0.0), ("random", 0.5)):
            run, m = _setup(paths, d, policy, p)
            fast, stock = _fast(run, m), _stock(run, paths)
            assert len(fast) == m.n_selected == len(stock), name
            for a, b in zip(fast, stock):
                assert a.keys() == b.keys(), name
                assert all((a[k] == b[k]) for k in a), (name, a["__key__"])


def test_streaming_fallback_for_pipes_and_compressed_shards(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 60, 20)
    gz = str(tmp_path / "d" / "z.tar.gz")
    with open(paths[0], "rb") as f, gzip.open(gz, "wb") as g:
        shutil.copyfileobj(f, g)
    os.remove(paths[0])
    shards = [gz, f"pipe:cat {paths[1]}", paths[2]]
    run, m = _setup(shards, tmp_path, "random", 0.5)
    assert m.shard_seekable == [False, False, True]
    fast = _fast(run, m)
    assert [s["__key__"] for s in fast] == m.table().column("key").to_pylist()
    with pytest.raises(ShardError, match="cannot seek"):
        _fast(run, m, fallback=False)


def test_a_changed_shard_is_an_error(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 40, 20, payload=100)
    run, m = _setup(paths, tmp_path, "full", 0.0)
    with open(paths[1], "ab") as f:  # grew
        f.write(bytes(512))
    with pytest.raises(ShardError, match=r"train-000001\.tar: file is .* bytes but the ledger indexed"):
        _fast(run, m)
    # same size, other content: the keys no longer match
    write_wds(str(tmp_path / "d"), 40, 20, payload=100, start=1000)
    with pytest.raises(ShardError, match=r"train-000000\.tar at byte 0: the sample at byte 0 has key 's0001000'"):
        _fast(run, m)
