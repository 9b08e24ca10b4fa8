#!/usr/bin/env python3
"""The quick-start job: real MNIST-1D shards -> ledger -> inspection.

Makes a small MNIST-1D shard set (skipped if already there), builds its
ledger, prints ``seta-stream info`` and a query over the ledger.

    python tools/demo.py --out demo
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo", help="working directory (data, ledger)")
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--test", type=int, default=4000)
    a = p.parse_args()
    t0 = time.perf_counter()
    data = os.path.join(a.out, "data")
    ledger = os.path.join(a.out, "ledger.duckdb")
    cli = [sys.executable, "-m", "seta_stream"]
    if not os.path.exists(os.path.join(data, "dataset.json")):
        run([sys.executable, os.path.join(HERE, "make_mnist1d_shards.py"), "--out", data,
             "--train", str(a.train), "--test", str(a.test)])  # fmt: skip
    run([*cli, "build-ledger", os.path.join(data, "train"), "--root", data, "--ledger", ledger])
    run([*cli, "info", "--ledger", ledger])
    run([*cli, "sql", "--ledger", ledger,
         "SELECT shard, count(*) AS samples, min(key) AS first_key, max(key) AS last_key "
         "FROM sample_scores GROUP BY shard ORDER BY shard LIMIT 5"])  # fmt: skip
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; ledger at {ledger}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
