#!/usr/bin/env python3
"""Planner speed and memory: every policy at 3M and 30M samples, vs the published code's way.

In one run:

* each policy plans one pruning-phase epoch (median of --repeat) on gamma
  distributed scores, in a fresh process so that its peak memory can be
  measured (reported as bytes per sample beyond the scores themselves);
* the baseline does what the published SeTa code does for the same epoch:
  a random subset with ``torch.randperm``, scikit-learn
  ``KMeans(n_clusters=k, random_state=0)`` on the kept scores, then grouping
  the ids per sample in a Python loop (at the smallest size only: it needs
  ~20 s and several GB at 3M);
* the manifest for 3M samples is written from a synthetic ledger
  (``write_manifest``), and a whole ``plan_epoch`` (scores read from DuckDB,
  plan, key lookup, write) is timed.

Targets on a 2-core machine: SeTa at 3M <= 0.2 s and >= 50x the baseline; at
100M <= 10 s (``--samples 100000000``); <= 40 bytes per sample beyond the
scores; manifest write for 3M <= 1 s. The last line is one JSON object.

    python benchmarks/bench_planner.py                 # 3M and 30M
    python benchmarks/bench_planner.py --samples 100000000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import emit  # noqa: E402

POLICY = dict(prune_ratio=0.1, num_group=5, window_scale=0.6, delta=0.875, epochs=10)
EPOCH = 3  # a pruning epoch with a window (t > 0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _scores(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    scores = np.empty(n, np.float32)
    for lo in range(0, n, 1 << 24):
        hi = min(n, lo + (1 << 24))
        scores[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    return scores, np.ones(n, dtype=bool)


def _measure_policy(policy: str, n: int, repeat: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from seta_stream.config import PolicyConfig
    from seta_stream.planner import plan

    scores, seen = _scores(n)
    base = _rss_bytes()
    cfg = PolicyConfig(policy=policy, **POLICY)
    times = []
    kept = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        sel = plan(scores, seen, EPOCH, cfg)
        times.append(time.perf_counter() - t0)
        kept = len(sel.ids)
        del sel
    out.put((statistics.median(times), max(0, _peak_bytes() - base), kept))


def _measure_baseline(n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The published code's epoch: randperm subset, sklearn KMeans, per-sample Python grouping."""
    import torch
    from sklearn.cluster import KMeans

    scores_np, _ = _scores(n)
    scores = torch.from_numpy(scores_np)
    base = _rss_bytes()
    k, keep = POLICY["num_group"], 1.0 - POLICY["prune_ratio"]
    t0 = time.perf_counter()
    torch.manual_seed(EPOCH)
    num = int(len(scores) * keep)
    pick = torch.randperm(len(scores))[:num]
    sub_scores, sub_ids = scores[pick], torch.arange(len(scores))[pick]
    labels = KMeans(n_clusters=k, random_state=0).fit(sub_scores.unsqueeze(1)).labels_
    grouped_scores: list[list[float]] = [[] for _ in range(k)]
    grouped_ids: list[list[int]] = [[] for _ in range(k)]
    for s, i, g in zip(sub_scores, sub_ids, labels):
        grouped_scores[g].append(s)
        grouped_ids[g].append(i)
    order = sorted(range(k), key=lambda g: float(np.mean(grouped_scores[g])))
    w = round(k * POLICY["window_scale"])
    start = EPOCH % (k - w + 1)
    selected = [i for g in order[start : start + w] for i in grouped_ids[g]]
    dt = time.perf_counter() - t0
    out.put((dt, max(0, _peak_bytes() - base), len(selected)))


def _in_child(target, *args):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def _manifest_times(n: int) -> tuple[float, float]:
    """(write_manifest seconds, whole plan_epoch seconds) for n samples in 1,000-sample shards."""
    import pyarrow as pa

    from seta_stream.config import PolicyConfig
    from seta_stream.ledger import Ledger
    from seta_stream.manifest import ShardInfo, plan_epoch, write_manifest
    from seta_stream.planner import plan

    per = 1000
    with tempfile.TemporaryDirectory() as tmp:
        lp = os.path.join(tmp, "l.duckdb")
        lg = Ledger.create(lp)
        n_shards = -(-n // per)
        lg.insert_shards([dict(shard_id=s, name=f"train/shard-{s:06d}.tar", url=f"/data/train/shard-{s:06d}.tar",
                               status="ok", error=None, n_samples=min(per, n - s * per), first_sample_id=s * per,
                               nbytes=per * 4096, fingerprint="size=0", seekable=True) for s in range(n_shards)])  # fmt: skip
        ids = np.arange(n, dtype=np.int64)
        lg.insert_samples(pa.table({
            "sample_id": ids, "shard_id": (ids // per).astype(np.int32), "pos": (ids % per).astype(np.int32),
            "key": pa.array([f"{i:012d}" for i in range(n)]), "byte_offset": (ids % per) * 4096,
            "nbytes": np.full(n, 4096, np.int64), "exts": pa.array(["jpg,txt"] * n),
        }))  # fmt: skip
        scores, _ = _scores(n)
        lg.con.register("s", pa.table({"sample_id": ids, "loss": scores}))
        lg.con.execute("UPDATE scores SET loss = s.loss, ema = s.loss, n_seen = 1 FROM s "
                       "WHERE scores.sample_id = s.sample_id")  # fmt: skip
        cfg = PolicyConfig(policy="seta", **POLICY)
        sel = plan(*lg.read_scores(), EPOCH, cfg)
        rows = lg.sample_rows(sel.ids)
        shards = [ShardInfo(f"train/shard-{s:06d}.tar", "", per, True) for s in range(n_shards)]
        times = []
        for r in range(3):
            t0 = time.perf_counter()
            write_manifest(os.path.join(tmp, f"m{r}"), shard_index=rows.column("shard_id").to_numpy(),
                           keys=rows.column("key"), sample_ids=sel.ids, pos=rows.column("pos"),
                           offsets=rows.column("byte_offset"), nbytes=rows.column("nbytes"), weights=sel.weights,
                           shards=shards, header={"epoch": EPOCH}, world_size=8, batch_size=256)  # fmt: skip
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plan_epoch(lg, os.path.join(tmp, "run"), EPOCH, cfg, world_size=8, batch_size=256)
        whole = time.perf_counter() - t0
        lg.close()
    return statistics.median(times), whole


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, nargs="+", default=[3_000_000, 30_000_000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-baseline", action="store_true", help="skip the slow published-code baseline")
    a = p.parse_args()
    sizes = sorted(a.samples)
    results: dict[int, dict[str, tuple[float, int, int]]] = {}
    for n in sizes:
        results[n] = {}
        for policy in ("seta", "infobatch", "random", "static", "full"):
            t, extra, kept = _in_child(_measure_policy, policy, n, a.repeat)
            results[n][policy] = (t, extra, kept)
            print(f"{policy:10s} N={n:>12,}  {t:8.3f} s  {extra / n:6.1f} bytes/sample beyond the scores  kept {kept:,}")
    n0 = sizes[0]
    baseline = None
    if not a.no_baseline:
        bt, bextra, bkept = _in_child(_measure_baseline, n0)
        baseline = bt
        print(f"{'baseline':10s} N={n0:>12,}  {bt:8.3f} s  {bextra / 1e6:8.0f} MB beyond the scores  kept {bkept:,}"
              "  (randperm + sklearn KMeans + Python grouping)")  # fmt: skip
        print(f"ratio baseline / seta at {n0:,}: {bt / results[n0]['seta'][0]:.0f}x   (target >= 50x)")
    n_manifest = min(n0, 3_000_000)  # the manifest target is for 3M; a 100M synthetic ledger needs ~20 GB
    mw, whole = _manifest_times(n_manifest)
    print(f"manifest write N={n_manifest:,}: {mw:.3f} s (median of 3; target <= 1 s); whole plan_epoch "
          f"(DuckDB reads + plan + write): {whole:.3f} s")  # fmt: skip
    big = sizes[-1]
    seta_t, seta_extra, _ = results[n0]["seta"]
    targets = {3_000_000: "target <= 0.2 s", 100_000_000: "target <= 10 s"}
    for n in sizes:
        print(f"seta at {n:,}: {results[n]['seta'][0]:.3f} s ({targets.get(n, 'no target at this size')})")
    print(f"peak {max(r['seta'][1] / n for n, r in results.items()):.1f} bytes/sample beyond the scores (target <= 40)")
    emit({
        "samples": n0,
        "seta_s": round(seta_t, 4),
        "baseline_s": round(baseline, 2) if baseline else None,
        "ratio": round(baseline / seta_t, 1) if baseline else None,
        "infobatch_s": round(results[n0]["infobatch"][0], 4),
        "random_s": round(results[n0]["random"][0], 4),
        "manifest_write_s": round(mw, 3),
        "manifest_samples": n_manifest,
        "plan_epoch_s": round(whole, 3),
        "peak_rss_mb": round(max(r[pol][1] for r in results.values() for pol in r) / 1e6, 1),
        "seta_bytes_per_sample": round(max(r["seta"][1] / n for n, r in results.items()), 1),
        "large_samples": big,
        "seta_large_s": round(results[big]["seta"][0], 3),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
