"""Shared helpers for the benchmarks: synthetic shards, timing, memory."""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BENCH_DIR = os.environ.get("SETA_BENCH_DIR", os.path.join(os.path.dirname(__file__), "..", ".bench"))


def synthetic_shards(n_samples: int, per_shard: int = 1000, payload: int = 3000, tag: str = "") -> list[str]:
    """Shards of ``n_samples`` samples (``jpg`` of ``payload`` random bytes + ``cls``), cached by size.

    Written with webdataset's ShardWriter as users write them (a pax header per
    member). Reused across runs when already present and complete.
    """
    import webdataset as wds

    d = os.path.abspath(os.path.join(BENCH_DIR, f"shards-{n_samples}-{per_shard}-{payload}{tag}"))
    n_shards = -(-n_samples // per_shard)
    paths = [os.path.join(d, f"bench-{i:06d}.tar") for i in range(n_shards)]
    done = os.path.join(d, "COMPLETE")
    if os.path.exists(done):
        return paths
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, size=payload + 4096, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    with wds.ShardWriter(os.path.join(d, "bench-%06d.tar"), maxcount=per_shard, verbose=0) as w:
        for i in range(n_samples):
            j = i % 4096
            w.write({"__key__": f"{i:010d}", "jpg": blob[j : j + payload], "cls": str(i % 1000).encode()})
    open(done, "w").close()
    print(f"# wrote {n_samples:,} samples in {len(paths)} shards to {d} ({time.perf_counter() - t0:.0f} s)")
    return paths


def median_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or its finished children), in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's final JSON line."""
    print(json.dumps(result))
