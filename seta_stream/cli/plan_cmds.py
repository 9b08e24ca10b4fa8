"""``plan`` and ``forecast``: decide an epoch, or simulate a whole schedule."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import load_config
from ..forecast import forecast
from ..ledger import Ledger
from ..manifest import Manifest, plan_epoch
from ..run import bind_run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="plan one epoch from the ledger's scores and write its manifest",
        description="Plan an epoch from the ledger's current scores and write its immutable manifest "
        "into RUN_DIR/manifests/. An epoch that already has a manifest is shown, not re-planned.",
    )
    p.add_argument("--ledger", required=True)
    p.add_argument("--config", required=True, help="YAML config")
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=None)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "forecast",
        help="simulate a schedule: samples kept per epoch and the total saving",
        description="Simulate the whole schedule on synthetic losses that fall as samples are trained "
        "(or on a ledger's current scores) and print the samples kept per epoch and the saved fraction.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--samples", type=int, default=None, help="dataset size (default: the ledger's)")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--ledger", help="start from this ledger's scores")
    p.set_defaults(func=cmd_forecast)


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


def summary_lines(m: Manifest, run_dir: str) -> list[str]:
    s = m.summary
    st = s["stats"]
    params = s["params"]
    n, kept = m.n_samples, m.n_selected
    lines = [
        f"epoch {m.epoch} of {params['epochs']}: policy {s['policy']}, {st['phase']} phase",
        f"kept {kept:,} of {n:,} samples ({100.0 * kept / max(n, 1):.1f}%), saving {100.0 * (1 - kept / max(n, 1)):.1f}%"
        " of this epoch",
    ]
    if "random_kept" in st:
        lines.append(f"random step kept {st['random_kept']:,}; then k-means into {st['num_group']} groups:")
    if st.get("groups"):
        a, b = st["window"]
        lines.append("  group        size          low         high       centre  window")
        for j, g in enumerate(st["groups"]):
            mark = "kept" if a <= j < b else ""
            lines.append(
                f"  {j:5d} {g['size']:11,d} {_fmt(g['lo']):>12} {_fmt(g['hi']):>12} {_fmt(g['center']):>12}  {mark}"
            )
        lines.append(f"window: groups {a}..{b - 1} of {st['num_group']}")
    if "threshold" in st:
        lines.append(
            f"threshold (mean score) {st['threshold']:.4g}: {st['below']:,} below it, {st['below_kept']:,} kept "
            f"with weight {st['weight']:.4g}"
        )
    sh = s["shards"]
    read = sum(1 for k in sh["kept"] if k)
    lines.append(f"shards: {read:,} of {len(sh['names']):,} hold kept samples")
    if s.get("batch_size"):
        lines.append(f"ranks: {s['world_size']} x {s['steps_per_rank']:,} batches of {s['batch_size']}")
    size = s["manifest"]["bytes"]
    lines.append(f"manifest: {os.path.join(run_dir, 'manifests', f'epoch={m.epoch:06d}')} ({size / 1e6:.1f} MB)")
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    if args.world_size < 1:
        raise ValueError(f"--world-size must be >= 1, got {args.world_size}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    cfg = load_config(args.config).policy
    with Ledger.open(args.ledger) as ledger:
        bind_run(ledger, args.out, cfg)
        m = plan_epoch(ledger, args.out, args.epoch, cfg, world_size=args.world_size, batch_size=args.batch_size)
    print("\n".join(summary_lines(m, args.out)))
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg = cfg.replace(epochs=args.epochs)
    policy = cfg.policy
    scores = seen = None
    if args.ledger:
        with Ledger.open(args.ledger, read_only=True) as ledger:
            scores, seen = ledger.read_scores("ema" if policy.score == "ema" else "loss")
    elif args.samples is None:
        raise ValueError("give --samples N (or --ledger PATH)")
    n = len(scores) if scores is not None else int(args.samples)
    f = forecast(policy, n, scores, seen)
    print(f"forecast: {policy.policy}, {n:,} samples, {policy.epochs} epochs "
          f"(prune_ratio {policy.prune_ratio}, num_group {policy.num_group}, window_scale {policy.window_scale}, "
          f"delta {policy.delta})")  # fmt: skip
    print(" epoch  phase         kept    kept%   saved so far")
    steps = 0
    for i, e in enumerate(f.epochs, 1):
        steps += e.kept
        print(f"{e.epoch:6d}  {e.phase:7s} {e.kept:11,d}  {100.0 * e.kept / n:6.1f}%  {100.0 * (1 - steps / (n * i)):9.1f}%")
    print(f"total: {f.sample_steps:,} sample-steps of {n * policy.epochs:,}; saved {100.0 * f.saved_fraction:.1f}%")
    return 0
