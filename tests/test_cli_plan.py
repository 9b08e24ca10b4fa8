from __future__ import annotations

import json
import os

import pytest
from shardutil import write_wds

from seta_stream.cli import main


@pytest.fixture()
def setup(tmp_path, capsys):
    paths = write_wds(str(tmp_path / "d"), 500, 100)
    lp = str(tmp_path / "l.duckdb")
    assert main(["build-ledger", *paths, "--ledger", lp, "--quiet", "--workers", "1"]) == 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("policy: seta\nprune_ratio: 0.2\nnum_group: 5\nwindow_scale: 0.6\nepochs: 8\n")
    capsys.readouterr()
    return lp, str(cfg), str(tmp_path / "run")


def test_plan_prints_a_summary_and_writes_the_manifest(setup, capsys) -> None:
    lp, cfg, run = setup
    assert main(["plan", "--ledger", lp, "--config", cfg, "--epoch", "0", "--out", run,
                 "--world-size", "2", "--batch-size", "32"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "epoch 0 of 8: policy seta, prune phase" in out
    assert "kept 400 of 500 samples (80.0%)" in out
    assert "window: groups 0..4 of 5" in out and "ranks: 2 x 7 batches of 32" in out
    assert os.path.exists(os.path.join(run, "manifests", "epoch=000000", "summary.json"))
    run_json = json.load(open(os.path.join(run, "run.json")))
    assert run_json["config"]["prune_ratio"] == 0.2
    # epoch out of range and a config that differs from the run's are one-line errors
    assert main(["plan", "--ledger", lp, "--config", cfg, "--epoch", "8", "--out", run]) == 1
    assert "epoch must be in [0, 8)" in capsys.readouterr().err
    other = os.path.join(os.path.dirname(cfg), "other.yaml")
    open(other, "w").write("policy: seta\nprune_ratio: 0.3\nepochs: 8\n")
    assert main(["plan", "--ledger", lp, "--config", other, "--epoch", "1", "--out", run]) == 1
    err = capsys.readouterr().err
    assert "was written with another config" in err and err.count("\n") == 1


def test_forecast_synthetic_and_from_ledger(setup, capsys) -> None:
    lp, cfg, _ = setup
    assert main(["forecast", "--config", cfg, "--samples", "20000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("forecast: seta, 20,000 samples, 8 epochs")
    rows = [line for line in out if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 8 and "anneal" in rows[-1] and rows[0].split()[2] == "16,000"
    saved = float(out[-1].rsplit("saved ", 1)[1].rstrip("%"))
    assert 20.0 < saved < 80.0
    assert main(["forecast", "--config", cfg, "--ledger", lp, "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "500 samples, 4 epochs" in out
    assert main(["forecast", "--config", cfg]) == 1
    assert "give --samples" in capsys.readouterr().err
