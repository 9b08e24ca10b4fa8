"""``seta-stream report``: figures of real (small) MNIST-1D training runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from seta_stream.cli import main

pytest.importorskip("torch")
pytest.importorskip("mnist1d")
pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALWAYS = ["kept_per_epoch.png", "loss_histograms.png", "group_transitions.png", "test_accuracy.png"]


def _tool(*args: str) -> None:
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", args[0]), *args[1:]], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A seta run on data with 20% flipped labels (6 epochs) and one on clean data (4 epochs)."""
    base = tmp_path_factory.mktemp("report")
    cfg = os.path.join(ROOT, "configs", "mnist1d.yaml")
    out = {}
    for name, noise, epochs in (("noisy", "0.2", "6"), ("clean", "0", "4")):
        data, run = str(base / f"data-{name}"), str(base / f"run-{name}")
        _tool("make_mnist1d_shards.py", "--out", data, "--train", "2000", "--test", "500", "--label-noise", noise,
              "--samples-per-shard", "250", "--quiet")  # fmt: skip
        _tool("train.py", "--config", cfg, "--data", data, "--run", run, "--epochs", epochs, "--quiet")
        out[name], out[f"{name}_data"] = run, data
    return out


def _check_png(path: str) -> None:
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] >= 300 and img.shape[1] >= 500, img.shape
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_report_of_a_run_with_label_noise(runs, tmp_path, capsys) -> None:
    out = str(tmp_path / "figs")
    assert main(["report", runs["noisy"], "--out", out]) == 0
    printed = capsys.readouterr().out.split()
    names = [*ALWAYS[:3], "label_noise.png", ALWAYS[3]]
    assert printed == [os.path.join(out, n) for n in names]
    for n in names:
        _check_png(os.path.join(out, n))
    index = open(os.path.join(out, "index.md"), encoding="utf-8").read()
    assert all(f"[{n}]({n})" in index for n in names) and "Policy seta, 6 of 6 epochs planned" in index


def test_report_of_a_clean_run_has_no_label_noise_figure(runs, capsys) -> None:
    assert main(["report", runs["clean"]]) == 0  # default --out: RUN_DIR/report
    out = os.path.join(runs["clean"], "report")
    assert capsys.readouterr().out.split() == [os.path.join(out, n) for n in ALWAYS]
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == sorted(ALWAYS)
    for n in ALWAYS:
        _check_png(os.path.join(out, n))


def test_report_data_and_ledger_options(runs, tmp_path, capsys) -> None:
    # --data names the dataset explicitly; --ledger the run's ledger
    out = str(tmp_path / "a")
    ledger = os.path.join(runs["noisy"], "ledger.duckdb")
    assert main(["report", runs["noisy"], "--out", out, "--data", runs["noisy_data"], "--ledger", ledger]) == 0
    assert os.path.exists(os.path.join(out, "label_noise.png"))
    # a dataset directory without label_noise.parquet, and another run's ledger, are one-line errors
    assert main(["report", runs["noisy"], "--out", str(tmp_path / "b"), "--data", runs["clean_data"]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seta-stream: error: no label_noise.parquet in") and err.count("\n") == 1
    other = os.path.join(runs["clean"], "ledger.duckdb")
    assert main(["report", runs["noisy"], "--out", str(tmp_path / "c"), "--ledger", other]) == 1
    assert "is not the ledger of run" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "b")) and not os.path.exists(str(tmp_path / "c"))


def test_report_of_a_directory_that_is_not_a_run(tmp_path, capsys) -> None:
    (tmp_path / "notarun").mkdir()
    assert main(["report", str(tmp_path / "notarun")]) == 1
    err = capsys.readouterr().err
    assert err == f"seta-stream: error: {tmp_path / 'notarun'} is not a run directory (no run.json)\n"
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def test_report_without_matplotlib_says_how_to_install_it(runs, tmp_path, monkeypatch, capsys) -> None:
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    assert main(["report", runs["clean"], "--out", str(tmp_path / "r")]) == 1
    assert "seta-stream report needs matplotlib: pip install 'seta-stream[report]'" in capsys.readouterr().err


def test_importing_seta_stream_does_not_import_matplotlib() -> None:
    code = "import sys, seta_stream, seta_stream.report, seta_stream.cli; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_replayed_scores_are_the_scores_the_planner_used(runs) -> None:
    from seta_stream.report import label_noise, load_run, noise_by_epoch, score_history

    data = load_run(runs["noisy"])
    hist = score_history(data)
    grouped = [p for p in data.plans if p.groups]
    assert grouped and len(hist.transitions) >= 2
    for p in grouped:
        # every sample the epoch kept lies in its window: the replay gives the planner's scores
        ids = pq.read_table(os.path.join(runs["noisy"], "manifests", f"epoch={p.epoch:06d}", "manifest.parquet"),
                            columns=["sample_id"]).column(0).to_numpy()  # fmt: skip
        a, b = p.stats["window"]
        s = hist.scores[p.epoch][ids]
        assert np.all(s >= p.groups[a]["lo"]) and np.all(s <= p.groups[b - 1]["hi"]), p.epoch
        assert set(np.unique(p.group_of(s))) <= set(range(a, b))
    # the flipped labels of label_noise.parquet map to 400 sample ids; epoch 0 keeps a uniform 80%
    noisy, final = label_noise(data, None, None)
    assert noisy.sum() == 400 and len(final) == data.n_samples
    per = noise_by_epoch(data, noisy)
    assert per["epoch"] == [p.epoch for p in data.plans] and abs(per["kept_share"][0] - 0.2) < 0.05
    assert np.nanmean(per["noisy_loss"]) > np.nanmean(per["clean_loss"])
