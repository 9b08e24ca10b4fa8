#!/usr/bin/env python3
"""The quick-start job, end to end on a small real dataset.

1. make MNIST-1D shards (20,000 train, 4,000 test) unless already there;
2. build their ledger;
3. train the 1-D CNN for 20 epochs with SeTa pruning, streaming the shards;
4. print the run's summary, the ledger's info, a query, and draw the report.

    python tools/demo.py --out demo          # what `make demo` runs

Running it again reuses the data and resumes (or just reports) the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd: list[str]) -> None:
    shown = [os.path.relpath(c, ROOT) if os.path.isabs(c) and c.startswith(ROOT) else c for c in cmd]
    print("\n$ " + " ".join(shown).replace(sys.executable, "python"), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo", help="working directory (data, ledger, run)")
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--test", type=int, default=4000)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "mnist1d.yaml"))
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    a = p.parse_args()
    t0 = time.perf_counter()
    data = os.path.join(a.out, "data")
    run_dir = os.path.join(a.out, "runs", "seta")
    cli = [sys.executable, "-m", "seta_stream"]
    if not os.path.exists(os.path.join(data, "dataset.json")):
        run([sys.executable, os.path.join(HERE, "make_mnist1d_shards.py"), "--out", data,
             "--train", str(a.train), "--test", str(a.test)])  # fmt: skip
    template = os.path.join(data, "ledger.duckdb")
    run([*cli, "build-ledger", os.path.join(data, "train"), "--root", data, "--ledger", template])
    train = [sys.executable, os.path.join(HERE, "train.py"), "--config", a.config, "--data", data, "--run", run_dir]
    if a.epochs:
        train += ["--epochs", str(a.epochs)]
    run(train)
    ledger = os.path.join(run_dir, "ledger.duckdb")
    run([*cli, "info", "--ledger", ledger])
    run([*cli, "sql", "--ledger", ledger,
         "SELECT shard, key, round(loss, 3) AS loss, n_seen, last_epoch FROM sample_scores "
         "WHERE n_seen > 0 ORDER BY loss DESC LIMIT 5"])  # fmt: skip
    run([*cli, "sql", "--ledger", ledger, "--run", run_dir,
         "SELECT epoch, count(*) AS trained, round(avg(loss), 4) AS mean_loss FROM losses "
         "GROUP BY epoch ORDER BY epoch"])  # fmt: skip
    try:
        import matplotlib  # noqa: F401

        run([*cli, "report", run_dir])
    except ImportError:
        print("\n(install matplotlib for `seta-stream report`)")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; the run is in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
