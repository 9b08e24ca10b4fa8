"""Kill-anywhere resume: a run SIGKILLed at any point and restarted from its last
checkpoint ends with the same manifests and ledger scores as a run never killed."""

from __future__ import annotations

import os
import shutil

import pytest
from shardutil import write_wds
from test_distributed import job

from seta_stream.builder import build_ledger
from seta_stream.ledger import Ledger
from seta_stream.manifest import epoch_dir, read_manifest

CFG = dict(policy="seta", prune_ratio=0.25, num_group=4, window_scale=0.5, epochs=4, delta=0.75)


@pytest.fixture(scope="module")
def base(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("resume")
    paths = write_wds(str(d / "data"), 240, 40)
    lp = str(d / "base.duckdb")
    build_ledger(paths, lp, progress=False)
    return d, lp


def _fresh(base, name: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    d, lp = base
    ledger = str(d / f"{name}.duckdb")
    shutil.copy(lp, ledger)
    run = str(d / name)
    shutil.rmtree(run, ignore_errors=True)
    return ledger, run


def _state(ledger: str, run: str) -> tuple[list, list, dict]:  # type: ignore[type-arg]
    with Ledger.open(ledger, read_only=True) as lg:
        scores = lg.con.execute("SELECT sample_id, loss, ema, n_seen, last_epoch FROM scores ORDER BY 1").fetchall()
        epochs = [(r["epoch"], r["n_selected"], r["n_records"]) for r in lg.epoch_rows()]
    files = {}
    for e in range(CFG["epochs"]):
        for name in ("manifest.parquet", "summary.json"):
            with open(os.path.join(epoch_dir(run, e), name), "rb") as f:
                files[(e, name)] = f.read()
    return scores, epochs, files


@pytest.fixture(scope="module")
def reference(base):  # type: ignore[no-untyped-def]
    out = {}
    for world in (1, 2):
        ledger, run = _fresh(base, f"ref{world}")
        r = job(ledger, run, world, "--sync-grads", config=CFG)
        assert r.returncode == 0, r.stderr[-3000:]
        out[world] = _state(ledger, run)
    return out


def _check_same(reference, world: int, ledger: str, run: str) -> None:  # type: ignore[no-untyped-def]
    scores, epochs, files = _state(ledger, run)
    ref_scores, ref_epochs, ref_files = reference[world]
    assert epochs == ref_epochs
    assert files == ref_files  # byte-identical manifests and summaries
    assert scores == ref_scores


def test_the_job_is_deterministic(base, reference) -> None:
    ledger, run = _fresh(base, "again")
    assert job(ledger, run, 1, "--sync-grads", config=CFG).returncode == 0
    _check_same(reference, 1, ledger, run)


@pytest.mark.parametrize(
    "name,args,env",
    [
        ("mid_epoch", ["--kill-at", "1:3"], {}),  # epoch 1 half trained
        ("ingest", [], {"SETA_STREAM_FAILPOINT": "ingest@1"}),  # inside the ingest transaction
        ("manifest_write", [], {"SETA_STREAM_FAILPOINT": "manifest_write@2"}),  # Parquet written, no summary
    ],
    ids=["mid_epoch", "during_ingest", "during_manifest_write"],
)
def test_killed_and_restarted_equals_never_killed(base, reference, name, args, env) -> None:  # type: ignore[no-untyped-def]
    ledger, run = _fresh(base, name)
    r = job(ledger, run, 1, "--sync-grads", *args, env=env, config=CFG)
    assert r.returncode == -9, r.stderr[-2000:]  # SIGKILL
    with Ledger.open(ledger, read_only=True) as lg:
        assert lg.ingested_epochs() == ([0, 1] if name == "manifest_write" else [0])
    if name == "manifest_write":
        assert os.path.exists(os.path.join(epoch_dir(run, 2), "manifest.parquet"))
        assert read_manifest(run, 2) is None
    r = job(ledger, run, 1, "--sync-grads", config=CFG)
    assert r.returncode == 0, r.stderr[-3000:]
    _check_same(reference, 1, ledger, run)


def test_rank_killed_after_spooling_then_restarted(base, reference) -> None:
    ledger, run = _fresh(base, "after_spool")
    r = job(ledger, run, 2, "--sync-grads", "--timeout", "10", env={"SETA_STREAM_FAILPOINT": "after_spool@1#1"},
            config=CFG)  # fmt: skip
    assert r.returncode != 0
    assert os.path.exists(os.path.join(run, "losses", "epoch=000001", "rank=1.parquet"))
    with Ledger.open(ledger, read_only=True) as lg:
        assert lg.ingested_epochs() == [0]
    r = job(ledger, run, 2, "--sync-grads", config=CFG)
    assert r.returncode == 0, r.stderr[-3000:]
    _check_same(reference, 2, ledger, run)
