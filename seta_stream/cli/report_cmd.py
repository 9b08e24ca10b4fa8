"""``report``: draw a training run's figures (PNG) for a person to look at."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="draw a run's figures (kept samples, score histograms, group transitions, label noise, accuracy)",
        description="Write PNG figures of one training run: samples kept per epoch, the scores the planner saw "
        "with its groups and window, how samples move between groups, where mislabeled samples sit (when the "
        "dataset records label noise) and the training curves (when metrics.jsonl exists). Needs matplotlib.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (holds run.json, manifests/, losses/)")
    p.add_argument("--out", metavar="DIR", help="where to write the figures (default: RUN_DIR/report)")
    p.add_argument("--data", metavar="DIR", help="dataset directory holding label_noise.parquet "
                   "(default: found from the ledger's shard URLs; skipped if none)")  # fmt: skip
    p.add_argument("--ledger", metavar="PATH", help="the run's ledger (default: RUN_DIR/ledger.duckdb if it "
                   "exists, else the ledger recorded in run.json)")  # fmt: skip
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    for path in write_report(args.run_dir, args.out, ledger=args.ledger, data_dir=args.data):
        print(path)
    return 0
