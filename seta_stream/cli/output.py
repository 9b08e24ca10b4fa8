"""Printing query results as an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, bytes):
        return v.hex()
    return v


def write_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table", out: TextIO | None = None
) -> None:
    """Write rows as ``table`` (aligned text), ``csv`` or ``json`` (an array of objects)."""
    out = out or sys.stdout
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        w.writerows([[("" if v is None else v) for v in r] for r in rows])
    elif fmt == "json":
        json.dump([{c: _jsonable(v) for c, v in zip(columns, r)} for r in rows], out, indent=1)
        out.write("\n")
    elif fmt == "table":
        cells = [[_cell(v) for v in r] for r in rows]
        widths = [len(c) for c in columns]
        for r in cells:
            for i, v in enumerate(r):
                widths[i] = min(max(widths[i], len(v)), 60)
        numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(columns))]

        def line(vals: Sequence[str]) -> str:
            parts = []
            for i, v in enumerate(vals):
                v = v if len(v) <= widths[i] else v[: widths[i] - 1] + "…"
                parts.append(v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]))
            return "  ".join(parts).rstrip()

        out.write(line(list(columns)) + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write(line(r) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    else:
        raise ValueError(f"format must be table, csv or json, got {fmt!r}")
