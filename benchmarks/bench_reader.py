#!/usr/bin/env python3
"""The fast pruned reader vs webdataset's tar reader + the prune stage, same shards, same run.

Kept samples per second, one process, on ~3 KB samples (cached under .bench/):

* webdataset: ``wds.WebDataset(shards).compose(prune_stage)``: tarfile parses
  every header and reads every sample; the stage drops the pruned ones;
* fast reader: seeks to the kept samples' byte spans (from the manifest) and
  parses their headers with the index's lean parser.

At 50% pruning (``random``; target >= 3x) and at 0% (``full``; target >= 1.5x);
median of --repeat alternating runs. The last line is one JSON object.

    python benchmarks/bench_reader.py --samples 300000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import emit, synthetic_shards  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=300_000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()

    import webdataset as wds

    from seta_stream.builder import build_ledger
    from seta_stream.config import PolicyConfig
    from seta_stream.ledger import Ledger
    from seta_stream.manifest import plan_epoch
    from seta_stream.reader import FastReader
    from seta_stream.stage import prune_stage

    paths = synthetic_shards(a.samples)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        lp = os.path.join(tmp, "l.duckdb")
        build_ledger(paths, lp, progress=False)
        for label, policy, ratio in (("50%", "random", 0.5), ("0%", "full", 0.0)):
            run = os.path.join(tmp, policy)
            with Ledger.open(lp) as lg:
                m = plan_epoch(lg, run, 0, PolicyConfig(policy=policy, prune_ratio=ratio, epochs=1))

            def stock() -> int:
                return sum(1 for _ in wds.WebDataset(paths, shardshuffle=False).compose(prune_stage(run, 0)))

            def fast() -> int:
                reader = FastReader(run)
                n = 0
                for i, url in enumerate(m.shard_urls):
                    if m.shard_kept[i]:
                        for _ in reader(m, i, url):
                            n += 1
                return n

            times: dict[str, list[float]] = {"wds": [], "fast": []}
            for _ in range(a.repeat):
                for name, fn in (("wds", stock), ("fast", fast)):
                    t0 = time.perf_counter()
                    n = fn()
                    times[name].append(time.perf_counter() - t0)
                    assert n == m.n_selected, (name, n, m.n_selected)
            w = m.n_selected / statistics.median(times["wds"])
            f = m.n_selected / statistics.median(times["fast"])
            results[label] = (w, f)
            print(f"{label:>4} pruned: kept {m.n_selected:,}; webdataset + stage {w:10,.0f} kept/s; "
                  f"fast reader {f:10,.0f} kept/s; ratio {f / w:5.2f}x")  # fmt: skip
    r50 = results["50%"][1] / results["50%"][0]
    r0 = results["0%"][1] / results["0%"][0]
    print(f"ratio at 50% pruning {r50:.2f}x (target >= 3x); at 0% {r0:.2f}x (target >= 1.5x)")
    emit({
        "samples": a.samples,
        "fast_reader_ratio": round(r50, 2),
        "fast_reader_ratio_full": round(r0, 2),
        "kept_samples_per_s": round(results["50%"][1]),
        "wds_samples_per_s": round(results["50%"][0]),
        "fast_samples_per_s_full": round(results["0%"][1]),
        "wds_samples_per_s_full": round(results["0%"][0]),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
