"""``build-ledger``, ``sql`` and ``info``: make and inspect a ledger."""

from __future__ import annotations

import argparse
import json
import sys

from ..builder import build_ledger
from ..errors import ShardError
from ..query import format_info, ledger_info, run_sql
from .output import write_rows


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "build-ledger",
        help="index tar shards into a ledger (creates it, or adds new shards)",
        description="Index WebDataset tar shards into a ledger (DuckDB file). Re-running adds new "
        "shards and keeps existing sample ids; a shard that changed since it was indexed is an error.",
    )
    p.add_argument("shards", nargs="+", help="shard paths, brace patterns, globs, directories, @list.txt, URLs")
    p.add_argument("--ledger", required=True, help="ledger file to create or extend")
    p.add_argument("--root", help="dataset root that shard names are relative to (default: common directory)")
    p.add_argument("--workers", type=int, default=None, help="indexing processes (default: CPU count)")
    p.add_argument("--skip-bad", action="store_true", help="record unreadable shards as bad and build the rest")
    p.add_argument("--rebuild", action="store_true", help="build a fresh ledger (new ids, scores reset)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build_ledger)

    p = sub.add_parser("sql", help="run read-only SQL on a ledger", description=cmd_sql.__doc__)
    p.add_argument("query", help="SQL (SELECT, DESCRIBE, SUMMARIZE, EXPLAIN, PRAGMA)")
    p.add_argument("--ledger", required=True)
    p.add_argument("--run", help="run directory: adds views `losses` and `manifests`")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("info", help="summarise a ledger")
    p.add_argument("--ledger", required=True)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)


def cmd_build_ledger(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    try:
        summary = build_ledger(
            args.shards,
            args.ledger,
            root=args.root,
            workers=args.workers,
            skip_bad=args.skip_bad,
            rebuild=args.rebuild,
            progress=not args.quiet,
        )
    except ShardError as e:
        print(f"seta-stream: error: {e} (nothing written; --skip-bad records bad shards and builds the rest)",
              file=sys.stderr)  # fmt: skip
        return 1
    for line in summary.lines():
        print(line)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Run read-only SQL against a ledger (tables: shards, samples, scores, epochs, meta;
    view sample_scores; with --run also losses and manifests)."""
    cols, rows = run_sql(args.ledger, args.query, run_dir=args.run)
    write_rows(cols, rows, args.format)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = ledger_info(args.ledger)
    if args.json:
        print(json.dumps(info, default=str, indent=1))
    else:
        print("\n".join(format_info(info)))
    return 0
