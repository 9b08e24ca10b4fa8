"""The user-facing scripts: MNIST-1D shards, train.py, the demo, the quick reproduction table."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")


def _py(*args: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def,type-arg]
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    out = str(tmp_path_factory.mktemp("m") / "data")
    r = _py(os.path.join(TOOLS, "make_mnist1d_shards.py"), "--out", out, "--train", "1500", "--test", "400",
            "--label-noise", "0.2", "--samples-per-shard", "300", "--seed", "3", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_mnist1d_shards(mnist: str, tmp_path) -> None:
    meta = json.load(open(os.path.join(mnist, "dataset.json")))
    assert meta["train"] == 1500 and meta["flipped"] == 300 and meta["signal_length"] == 40
    train = sorted(os.listdir(os.path.join(mnist, "train")))
    assert train == [f"train-{i:06d}.tar" for i in range(5)]
    samples = list(wds.WebDataset(os.path.join(mnist, "train", "train-{000000..000004}.tar"), shardshuffle=False))
    assert len(samples) == 1500 and samples[0]["__key__"] == "train00000000"
    x = np.load(__import__("io").BytesIO(samples[0]["npy"]))
    assert x.shape == (40,) and x.dtype == np.float32 and 0 <= int(samples[0]["cls"]) <= 9
    noise = pq.read_table(os.path.join(mnist, "label_noise.parquet")).to_pylist()
    assert len(noise) == 300 and all(r["clean_label"] != r["label"] for r in noise)
    by_key = {s["__key__"]: int(s["cls"]) for s in samples}
    assert all(by_key[r["key"]] == r["label"] for r in noise) and noise[0]["shard"].startswith("train/")
    # deterministic content: the same command writes the same bytes
    again = str(tmp_path / "again")
    r = _py(os.path.join(TOOLS, "make_mnist1d_shards.py"), "--out", again, "--train", "1500", "--test", "400",
            "--label-noise", "0.2", "--samples-per-shard", "300", "--seed", "3", "--quiet")  # fmt: skip
    assert r.returncode == 0
    for name in train:
        assert filecmp.cmp(os.path.join(mnist, "train", name), os.path.join(again, "train", name), shallow=False)
    r = _py(os.path.join(TOOLS, "make_mnist1d_shards.py"), "--out", again, "--train", "10", "--test", "1")
    assert r.returncode != 0 and "already holds a dataset" in r.stderr
    r = _py(os.path.join(TOOLS, "make_mnist1d_shards.py"), "--out", str(tmp_path / "x"), "--train", "10",
            "--test", "1", "--label-noise", "1.5")  # fmt: skip
    assert r.returncode != 0 and "--label-noise must be in [0, 1)" in r.stderr


def test_train_logs_metrics_and_resumes(mnist: str, tmp_path) -> None:
    run = str(tmp_path / "run")
    args = [os.path.join(TOOLS, "train.py"), "--config", os.path.join(ROOT, "configs", "mnist1d.yaml"), "--data",
            mnist, "--run", run, "--epochs", "3", "--quiet", "--set", "prune_ratio=0.3"]  # fmt: skip
    r = _py(*args, "--seed", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    assert [x["epoch"] for x in rows] == [0, 1, 2]
    assert {"kept", "saved_fraction", "train_loss", "test_acc", "epoch_time_s", "phase"} <= set(rows[0])
    assert rows[0]["kept"] == 1050 and 0.2 < rows[-1]["saved_fraction"] < 0.9
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["policy"] == "seta" and 0 < summary["test_acc"] <= 1
    assert "done: test accuracy" in r.stdout and "seta-stream sql --ledger" in r.stdout
    # the same command again: nothing left to train, the metrics stay
    r = _py(*args, "--seed", "1")
    assert r.returncode == 0 and "resuming at epoch 3" in r.stdout
    assert len(open(os.path.join(run, "metrics.jsonl")).readlines()) == 3
    # another policy from the registry, and a bad override
    r = _py(*args[:-2], "--policy", "infobatch", "--run", str(tmp_path / "ib"))
    assert r.returncode == 0, r.stderr[-2000:]
    r = _py(*args[:-2], "--set", "prune_ratio=2", "--run", str(tmp_path / "bad"))
    assert r.returncode != 0 and "prune_ratio must be in [0, 1)" in r.stderr


def test_train_under_torchrun_on_two_cpu_ranks(mnist: str, tmp_path) -> None:
    run = str(tmp_path / "ddp")
    r = _py("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            os.path.join(TOOLS, "train.py"), "--config", os.path.join(ROOT, "configs", "mnist1d.yaml"),
            "--data", mnist, "--run-dir", run, "--epochs", "2", "--device", "cpu", "--quiet", timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    assert [x["epoch"] for x in rows] == [0, 1]
    assert sorted(os.listdir(os.path.join(run, "losses", "epoch=000000"))) == ["rank=0.parquet", "rank=1.parquet"]


def test_demo_runs_end_to_end(tmp_path) -> None:
    r = _py(os.path.join(TOOLS, "demo.py"), "--out", str(tmp_path / "demo"), "--train", "2000", "--test", "500",
            "--epochs", "3", cwd=ROOT, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "done: test accuracy" in out and "demo finished in" in out
    assert "samples          2,000" in out  # seta-stream info
    assert os.path.exists(tmp_path / "demo" / "runs" / "seta" / "report")


def test_quick_reproduction_table(tmp_path) -> None:
    r = _py(os.path.join(ROOT, "benchmarks", "quality_mnist1d.py"), "--quick", "--work", str(tmp_path / "work"),
            "--results", str(tmp_path / "results"), timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.load(open(tmp_path / "results" / "results-quick.json"))
    assert {(x["policy"], x["noise"]) for x in rows} == {(p, n) for p in ("full", "random", "seta") for n in (0.0, 0.2)}
    for x in rows:
        assert {"policy", "target_saving", "noise", "seed", "test_acc", "saved_fraction", "train_time_s"} <= set(x)
        if x["policy"] == "random":
            assert x["saved_fraction"] == pytest.approx(0.5, abs=0.02)
    md = open(tmp_path / "results" / "results-quick.md").read()
    assert "| seta | ~50% |" in md and "python benchmarks/quality_mnist1d.py --quick" in md
