#!/usr/bin/env python3
"""Ledger build speed: ``build-ledger`` vs a plain ``wds.WebDataset`` pass.

Writes N samples (~3 KB each, 1,000 per shard; cached under .bench/), then in
one run times:

* ``build_ledger`` with one worker (samples/s per worker; median of --repeat),
* ``build_ledger`` with --workers processes (whole-machine throughput),
* a plain ``wds.WebDataset`` iteration over the same shards (the baseline).

Target (2-core machine): >= 90,000 samples/s per worker and >= 5x webdataset.
The last line is one JSON object with the figures.

    python benchmarks/bench_ledger.py --samples 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import emit, median_time, peak_rss_mb, synthetic_shards  # noqa: E402

from seta_stream.builder import build_ledger  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--per-shard", type=int, default=1000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()

    import webdataset as wds

    paths = synthetic_shards(a.samples, a.per_shard)
    nbytes = sum(os.path.getsize(x) for x in paths)
    print(f"{a.samples:,} samples, {len(paths)} shards, {nbytes / 1e9:.2f} GB")
    with tempfile.TemporaryDirectory() as tmp:

        def build(workers: int) -> int:
            lp = os.path.join(tmp, f"l{workers}.duckdb")
            s = build_ledger(paths, lp, workers=workers, progress=False, rebuild=True)
            return s.samples_total

        t1, n = median_time(lambda: build(1), a.repeat)
        assert n == a.samples, n
        rss = peak_rss_mb()
        tw, _ = median_time(lambda: build(a.workers), a.repeat)
        rss_children = peak_rss_mb(children=True)

    def wds_pass() -> int:
        count = 0
        for _ in wds.WebDataset(paths, shardshuffle=False):
            count += 1
        return count

    t0 = time.perf_counter()
    n_wds = wds_pass()
    t_wds = time.perf_counter() - t0
    assert n_wds == a.samples, n_wds

    per_worker = a.samples / t1
    machine = a.samples / tw
    wds_rate = a.samples / t_wds
    print(f"build-ledger, 1 worker      {t1:8.2f} s  {per_worker:12,.0f} samples/s (median of {a.repeat})")
    print(f"build-ledger, {a.workers} workers     {tw:8.2f} s  {machine:12,.0f} samples/s (median of {a.repeat})")
    print(f"wds.WebDataset pass         {t_wds:8.2f} s  {wds_rate:12,.0f} samples/s")
    print(f"ratio (1 worker / wds)      {per_worker / wds_rate:8.1f}x   target >= 5x; per worker target >= 90,000/s")
    print(f"peak RSS                    {rss:8.0f} MB (main), {rss_children:.0f} MB (largest worker)")
    emit(
        {
            "samples": a.samples,
            "ledger_samples_per_s": round(per_worker),
            "wds_samples_per_s": round(wds_rate),
            "ratio": round(per_worker / wds_rate, 2),
            "peak_rss_mb": round(rss),
            "ledger_samples_per_s_all_workers": round(machine),
            "workers": a.workers,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
