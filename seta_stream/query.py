"""Read-only inspection of a ledger (and a run's history): SQL and a summary.

``run_sql`` opens the ledger read-only and accepts only statements that read
(``SELECT``, ``EXPLAIN``, ``PRAGMA``, and DuckDB's ``DESCRIBE``/``SHOW``/
``SUMMARIZE``, which are selects). With a run directory it also defines the
views ``losses`` (every loss record of every epoch: ``epoch``, ``rank``,
``sample_id``, ``loss``) and ``manifests`` (every epoch's selection: ``epoch``,
``shard``, ``key``, ``sample_id``, ``weight``, ...).
"""

from __future__ import annotations

import glob
import os
from typing import Any

import duckdb

from .errors import LedgerError, SetaStreamError
from .ledger import Ledger, fetch_one

_READ_ONLY_TYPES = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
}


def check_read_only(sql: str) -> None:
    """Raise SetaStreamError unless every statement in ``sql`` only reads."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise SetaStreamError(f"SQL error: {str(e).splitlines()[0]}") from None
    if not statements:
        raise SetaStreamError("no SQL statement given")
    for st in statements:
        if st.type not in _READ_ONLY_TYPES:
            kind = str(st.type).rsplit(".", 1)[-1]
            raise SetaStreamError(f"inspection is read-only: {kind} statements are refused")


def _attach_run_views(con: duckdb.DuckDBPyConnection, run_dir: str) -> None:
    if not os.path.isdir(run_dir):
        raise SetaStreamError(f"run directory {run_dir} does not exist")
    losses = os.path.join(run_dir, "losses", "epoch=*", "rank=*.parquet")
    if glob.glob(losses):
        con.execute(
            "CREATE TEMP VIEW losses AS SELECT CAST(epoch AS INTEGER) AS epoch, "
            "CAST(regexp_extract(filename, 'rank=([0-9]+)[.]parquet$', 1) AS INTEGER) AS rank, sample_id, loss "
            f"FROM read_parquet('{_quote(losses)}', hive_partitioning = true, filename = true)"
        )
    manifests = os.path.join(run_dir, "manifests", "epoch=*", "manifest.parquet")
    if glob.glob(manifests):
        con.execute(
            "CREATE TEMP VIEW manifests AS SELECT CAST(epoch AS INTEGER) AS epoch, * EXCLUDE (epoch) "
            f"FROM read_parquet('{_quote(manifests)}', hive_partitioning = true)"
        )


def _quote(s: str) -> str:
    return s.replace("'", "''")


def run_sql(ledger_path: str, sql: str, run_dir: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only SQL against a ledger.

    Args:
        ledger_path: The ledger file.
        sql: One or more statements; the last one's result is returned.
        run_dir: A run directory whose loss history and manifests become the
            views ``losses`` and ``manifests``.

    Returns:
        (column names, rows) of the last statement.

    Raises:
        SetaStreamError: a statement writes, or the SQL is invalid.
        LedgerError: the ledger is missing, locked, or of another version.
    """
    check_read_only(sql)
    with Ledger.open(ledger_path, read_only=True, timeout=10.0) as ledger:
        con = ledger.con
        if run_dir is not None:
            _attach_run_views(con, run_dir)
        try:
            cur = None
            for st in duckdb.extract_statements(sql):
                cur = con.execute(st)
            if cur is None or cur.description is None:
                return [], []
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()
        except duckdb.Error as e:
            raise SetaStreamError(f"SQL error: {str(e).splitlines()[0]}") from None


def ledger_info(ledger_path: str) -> dict[str, Any]:
    """A summary of a ledger: sizes, schema, shards, samples, scores, epochs."""
    with Ledger.open(ledger_path, read_only=True, timeout=10.0) as ledger:
        con = ledger.con

        def one(sql: str) -> Any:
            row = fetch_one(con, sql)
            return row[0] if row else None

        info: dict[str, Any] = {
            "ledger": ledger_path,
            "file_bytes": os.path.getsize(ledger_path),
            "schema_version": int(ledger.meta("schema_version") or 0),
            "ledger_id": ledger.ledger_id,
            "fingerprint": ledger.fingerprint(),
            "created_at": ledger.meta("created_at"),
            "owner_run": ledger.meta("owner_run"),
            "shards_ok": one("SELECT count(*) FROM shards WHERE status = 'ok'"),
            "shards_bad": one("SELECT count(*) FROM shards WHERE status = 'bad'"),
            "samples": one("SELECT count(*) FROM samples"),
            "shard_bytes": one("SELECT coalesce(sum(nbytes), 0) FROM shards"),
            "samples_seen": one("SELECT count(*) FROM scores WHERE n_seen > 0"),
        }
        row = fetch_one(
            con, "SELECT avg(loss), min(loss), max(loss), quantile_cont(loss, 0.5) FROM scores WHERE n_seen > 0"
        )
        info["loss_mean"], info["loss_min"], info["loss_max"], info["loss_median"] = row if row else (None,) * 4
        info["epochs_planned"] = one("SELECT count(*) FROM epochs WHERE planned_at IS NOT NULL")
        info["epochs_ingested"] = one("SELECT count(*) FROM epochs WHERE ingested_at IS NOT NULL")
        info["last_epoch_ingested"] = one("SELECT max(epoch) FROM epochs WHERE ingested_at IS NOT NULL")
        info["bad_shards"] = con.execute("SELECT name, error FROM shards WHERE status = 'bad' ORDER BY name").fetchall()
    return info


def format_info(info: dict[str, Any]) -> list[str]:
    """Human-readable lines for :func:`ledger_info`."""
    n = info["samples"] or 0
    seen = info["samples_seen"] or 0
    lines = [
        f"ledger           {info['ledger']} ({info['file_bytes'] / 1e6:.1f} MB)",
        f"schema version   {info['schema_version']}",
        f"ledger id        {info['ledger_id']}",
        f"fingerprint      {info['fingerprint']}",
        f"created          {info['created_at']}",
        f"shards           {info['shards_ok']:,} ok, {info['shards_bad']:,} bad ({info['shard_bytes']:,} bytes)",
        f"samples          {n:,}",
        f"seen             {seen:,} have a loss ({(100.0 * seen / n) if n else 0:.1f}%), {n - seen:,} never seen",
    ]
    if seen:
        lines.append(
            f"loss             mean {info['loss_mean']:.4g}, median {info['loss_median']:.4g}, "
            f"min {info['loss_min']:.4g}, max {info['loss_max']:.4g}"
        )
    last = info["last_epoch_ingested"]
    lines.append(
        f"epochs           {info['epochs_planned']} planned, {info['epochs_ingested']} ingested"
        + (f" (last ingested: {last})" if last is not None else "")
    )
    if info["owner_run"]:
        lines.append(f"scores owned by  run {info['owner_run']}")
    for name, err in info["bad_shards"]:
        lines.append(f"bad shard        {name}: {err}")
    return lines


__all__ = ["check_read_only", "run_sql", "ledger_info", "format_info", "LedgerError"]
