"""The ledger: an embedded DuckDB file that knows every sample and its loss.

Tables (schema version 1; ``seta-stream sql`` queries them directly):

``meta(key, value)``
    ``schema_version``, ``ledger_id`` (random, fixed at creation), ``created_at``,
    ``owner_run`` (the run whose losses the scores hold, once training starts).
``shards(shard_id, name, url, status, error, n_samples, first_sample_id, nbytes, fingerprint, seekable, added_at)``
    One row per shard; ``status`` is ``ok`` or ``bad`` (then ``error`` says why
    and the shard has no samples). ``name`` is the shard's path relative to the
    dataset root: the identity that survives moving the data.
``samples(sample_id, shard_id, pos, key, byte_offset, nbytes, exts)``
    One row per sample. ``sample_id`` is dense int64, in shard order then
    position order; ``byte_offset``/``nbytes`` span the sample's tar headers and
    data, for readers that seek; ``exts`` lists the member extensions.
``scores(sample_id, loss, ema, n_seen, last_epoch)``
    Current state: ``loss`` is the latest per-sample loss, ``ema`` its running
    average; both NULL (and ``n_seen`` 0) for a sample never trained on.
``epochs(epoch, policy, params, n_samples, n_selected, saved_fraction, window_groups, bounds, planned_at, n_records, n_nonfinite, ingested_at)``
    One row per planned or ingested epoch; makes planning and ingest
    idempotent and tells a restarted run where it stands.

View ``sample_scores`` joins samples, shard names and scores.

Only one process may hold the file open for writing, and DuckDB then admits no
reader: training opens it only for short transactions at epoch boundaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from .errors import LedgerError
from .failpoints import failpoint

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE shards (
    shard_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    url VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error VARCHAR,
    n_samples BIGINT NOT NULL,
    first_sample_id BIGINT NOT NULL,
    nbytes BIGINT NOT NULL,
    fingerprint VARCHAR NOT NULL,
    seekable BOOLEAN NOT NULL,
    added_at TIMESTAMP NOT NULL
);
CREATE TABLE samples (
    sample_id BIGINT NOT NULL,
    shard_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    key VARCHAR NOT NULL,
    byte_offset BIGINT NOT NULL,
    nbytes BIGINT NOT NULL,
    exts VARCHAR NOT NULL
);
CREATE TABLE scores (
    sample_id BIGINT NOT NULL,
    loss REAL,
    ema REAL,
    n_seen INTEGER NOT NULL,
    last_epoch INTEGER
);
CREATE TABLE epochs (
    epoch INTEGER PRIMARY KEY,
    policy VARCHAR,
    params JSON,
    n_samples BIGINT,
    n_selected BIGINT,
    saved_fraction DOUBLE,
    window_groups JSON,
    bounds JSON,
    planned_at TIMESTAMP,
    n_records BIGINT,
    n_nonfinite BIGINT,
    ingested_at TIMESTAMP
);
CREATE VIEW sample_scores AS
    SELECT s.sample_id, sh.name AS shard, s.pos, s.key, c.loss, c.ema, c.n_seen, c.last_epoch
    FROM samples s JOIN shards sh USING (shard_id) JOIN scores c USING (sample_id);
"""


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """First row of a query, reading the result to its end (DuckDB 2 refuses
    further work on a connection whose previous result is unfinished)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def last_per_id(ids: NDArray[np.int64], n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Unique ids (sorted) and, for each, the index of its last occurrence in ``ids``.

    O(n) without a sort when no id repeats (the common case); a stable sort
    otherwise (an epoch whose short ranks repeated a few samples).
    """
    counts = np.bincount(ids, minlength=n)
    if len(counts) and counts.max() <= 1:
        where = np.full(n, -1, dtype=np.int64)
        where[ids] = np.arange(len(ids), dtype=np.int64)
        uniq = np.flatnonzero(counts).astype(np.int64)
        return uniq, where[uniq]
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    is_last = np.ones(len(ids), dtype=bool)
    is_last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
    return sorted_ids[is_last].astype(np.int64), order[is_last].astype(np.int64)


def query_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run a query and return its result as a pyarrow Table (DuckDB 1.x and 2.x)."""
    rel = con.sql(sql, params=params)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    out = fetch()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


@dataclass(frozen=True)
class ShardRow:
    """A row of the ``shards`` table."""

    shard_id: int
    name: str
    url: str
    status: str
    error: str | None
    n_samples: int
    first_sample_id: int
    nbytes: int
    fingerprint: str
    seekable: bool


def _connect(path: str, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting while another process holds its lock."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            msg = str(e)
            if "lock" not in msg.lower():
                raise LedgerError(f"cannot open ledger {path}: {msg.splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                raise LedgerError(
                    f"ledger {path} is locked by another process (a run ingesting an epoch, "
                    f"or an open session) for more than {timeout:g} s; try again"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        except duckdb.Error as e:
            raise LedgerError(f"cannot open ledger {path}: {str(e).splitlines()[0]}") from None


class Ledger:
    """An open ledger. Use :meth:`open` or :meth:`create`, and close it soon.

    The object is a context manager; leaving the ``with`` block closes the file
    so that other processes (``seta-stream sql``, the next epoch) can open it.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create(cls, path: str) -> Ledger:
        """Create a new, empty ledger file at ``path`` (which must not exist)."""
        if os.path.exists(path):
            raise LedgerError(f"ledger {path} already exists")
        con = _connect(path, read_only=False, timeout=0)
        con.execute(_DDL)
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "ledger_id": uuid.uuid4().hex,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        return cls(con, path, read_only=False)

    @classmethod
    def open(cls, path: str, *, read_only: bool = False, timeout: float = 60.0) -> Ledger:
        """Open an existing ledger and check its schema version.

        Raises:
            LedgerError: missing file, not a ledger, another schema version, or
                locked by another process for longer than ``timeout`` seconds.
        """
        if not os.path.exists(path):
            raise LedgerError(f"ledger {path} does not exist (build it with `seta-stream build-ledger`)")
        con = _connect(path, read_only=read_only, timeout=timeout)
        try:
            row = fetch_one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
        except duckdb.Error:
            con.close()
            raise LedgerError(f"{path} is not a seta-stream ledger (no meta table)") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            con.close()
            found = row[0] if row else "none"
            raise LedgerError(
                f"ledger {path} has schema version {found}; this seta-stream reads version "
                f"{SCHEMA_VERSION} (rebuild it with `seta-stream build-ledger --rebuild`)"
            )
        return cls(con, path, read_only=read_only)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block in one transaction: all of it commits, or none of it."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- metadata ----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = fetch_one(self.con, "SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]
        )

    @property
    def ledger_id(self) -> str:
        value = self.meta("ledger_id")
        if value is None:
            raise LedgerError(f"ledger {self.path} has no ledger_id")
        return value

    def shards(self, status: str | None = None) -> list[ShardRow]:
        """The shards in shard_id order, optionally only those with ``status``."""
        sql = (
            "SELECT shard_id, name, url, status, error, n_samples, first_sample_id, nbytes, fingerprint, seekable "
            "FROM shards"
        )
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        rows = self.con.execute(sql + " ORDER BY shard_id", params).fetchall()
        return [ShardRow(*r) for r in rows]

    def num_samples(self) -> int:
        """Number of samples (equal to one past the largest sample_id)."""
        row = fetch_one(self.con, "SELECT coalesce(max(sample_id) + 1, 0) FROM samples")
        return int(row[0]) if row else 0

    def fingerprint(self) -> str:
        """A digest of the ledger's identity and its good shards.

        It changes when shards are added or rebuilt, never when scores change;
        manifests and run directories record it to refuse mixing ledgers.
        """
        h = hashlib.sha256(self.ledger_id.encode())
        for s in self.shards(status="ok"):
            h.update(f"\n{s.name}\t{s.n_samples}\t{s.first_sample_id}\t{s.fingerprint}".encode())
        return h.hexdigest()[:32]

    # -- building ----------------------------------------------------------------

    def next_ids(self) -> tuple[int, int]:
        """(next shard_id, next sample_id) for appending."""
        row = fetch_one(self.con, "SELECT coalesce(max(shard_id) + 1, 0) FROM shards")
        return (int(row[0]) if row else 0), self.num_samples()

    def insert_shards(self, rows: list[dict[str, Any]]) -> None:
        """Append rows to ``shards`` (keys as its columns, ``added_at`` set now)."""
        cols = ["shard_id", "name", "url", "status", "error", "n_samples", "first_sample_id", "nbytes",
                "fingerprint", "seekable"]  # fmt: skip
        types = [pa.int32(), pa.string(), pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(),
                 pa.int64(), pa.string(), pa.bool_()]  # fmt: skip
        tbl = pa.table({c: pa.array([r[c] for r in rows], type=t) for c, t in zip(cols, types)})
        self.con.register("_new_shards", tbl)
        try:
            self.con.execute(f"INSERT INTO shards SELECT {', '.join(cols)}, now()::TIMESTAMP FROM _new_shards")
        finally:
            self.con.unregister("_new_shards")

    def delete_shard(self, name: str) -> None:
        """Remove a shard row that holds no samples (a bad shard being retried)."""
        self.con.execute("DELETE FROM shards WHERE name = ? AND n_samples = 0", [name])

    def insert_samples(self, table: pa.Table) -> None:
        """Append sample rows (columns as in ``samples``) and their empty scores."""
        self.con.register("_new_samples", table)
        try:
            self.con.execute("INSERT INTO samples SELECT * FROM _new_samples")
            self.con.execute("INSERT INTO scores SELECT sample_id, NULL, NULL, 0, NULL FROM _new_samples")
        finally:
            self.con.unregister("_new_samples")

    # -- reading for planning ------------------------------------------------------

    def read_scores(self, column: str = "loss") -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """All samples' scores in sample_id order.

        Args:
            column: ``loss`` (latest loss) or ``ema`` (running average).

        Returns:
            ``(scores, seen)``: float32 scores (NaN where never seen) and the
            seen mask, both of length :meth:`num_samples`.
        """
        if column not in ("loss", "ema"):
            raise ValueError(f"score column must be 'loss' or 'ema', got {column!r}")
        tbl = query_arrow(self.con, f"SELECT {column} AS s, n_seen > 0 AS seen FROM scores ORDER BY sample_id")
        scores = tbl.column("s").to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        seen = tbl.column("seen").to_numpy(zero_copy_only=False).astype(bool, copy=False)
        return scores, seen

    def sample_rows(self, ids: NDArray[np.int64]) -> pa.Table:
        """``shard_id, pos, key, byte_offset, nbytes`` of the given sorted sample ids, in that order."""
        tbl = query_arrow(self.con, "SELECT shard_id, pos, key, byte_offset, nbytes FROM samples ORDER BY sample_id")
        if len(ids) == tbl.num_rows:
            return tbl
        return tbl.take(pa.array(ids, pa.int64()))

    def record_plan(
        self,
        *,
        epoch: int,
        policy: str,
        params: dict[str, Any],
        n_samples: int,
        n_selected: int,
        window: list[int] | None,
        bounds: list[list[float]] | None,
    ) -> None:
        """Record (or refresh) an epoch's plan in the ``epochs`` table."""
        saved = 1.0 - n_selected / n_samples if n_samples else 0.0
        self.con.execute(
            """INSERT INTO epochs (epoch, policy, params, n_samples, n_selected, saved_fraction, window_groups,
                                   bounds, planned_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)
               ON CONFLICT (epoch) DO UPDATE SET policy = excluded.policy, params = excluded.params,
                   n_samples = excluded.n_samples, n_selected = excluded.n_selected,
                   saved_fraction = excluded.saved_fraction, window_groups = excluded.window_groups,
                   bounds = excluded.bounds, planned_at = coalesce(epochs.planned_at, excluded.planned_at)""",
            [epoch, policy, json.dumps(params), n_samples, n_selected, saved, json.dumps(window), json.dumps(bounds)],
        )

    def is_ingested(self, epoch: int) -> bool:
        row = fetch_one(self.con, "SELECT ingested_at IS NOT NULL FROM epochs WHERE epoch = ?", [epoch])
        return bool(row and row[0])

    def ingested_epochs(self) -> list[int]:
        return [r[0] for r in self.con.execute("SELECT epoch FROM epochs WHERE ingested_at IS NOT NULL ORDER BY epoch").fetchall()]

    def ingest(
        self,
        epoch: int,
        ids: NDArray[np.int64],
        losses: NDArray[np.float32],
        *,
        ema_alpha: float,
        n_nonfinite: int = 0,
    ) -> bool:
        """Merge an epoch's loss records into ``scores``, in one transaction.

        Each sample's last record of the epoch wins. ``loss`` becomes it,
        ``ema`` moves towards it (``a*ema + (1-a)*loss``; the loss itself on
        first sight), ``n_seen`` grows by one, ``last_epoch`` becomes ``epoch``.
        The epoch is marked ingested in the same transaction, so ingesting it
        again changes nothing.

        Returns:
            True if the records were merged, False if the epoch was already ingested.

        Raises:
            LedgerError: a record's sample id is outside the ledger.
        """
        ids = np.asarray(ids, dtype=np.int64)
        losses = np.asarray(losses, dtype=np.float32)
        n = self.num_samples()
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n):
            bad = ids[(ids < 0) | (ids >= n)]
            raise LedgerError(f"epoch {epoch}: loss records for sample ids outside the ledger (0..{n - 1}): "
                              f"{', '.join(map(str, bad[:5]))}")  # fmt: skip
        uniq, last = last_per_id(ids, n)
        update = pa.table({"sample_id": pa.array(uniq, pa.int64()), "loss": pa.array(losses[last], pa.float32())})
        with self.transaction():
            if self.is_ingested(epoch):
                return False
            self.con.register("_records", update)
            try:
                self.con.execute(
                    """UPDATE scores SET
                           loss = r.loss,
                           ema = CASE WHEN scores.n_seen = 0 THEN r.loss
                                      ELSE (? * scores.ema + (1 - ?) * r.loss)::REAL END,
                           n_seen = scores.n_seen + 1,
                           last_epoch = ?
                       FROM _records r WHERE scores.sample_id = r.sample_id""",
                    [ema_alpha, ema_alpha, epoch],
                )
            finally:
                self.con.unregister("_records")
            self.con.execute(
                """INSERT INTO epochs (epoch, n_records, n_nonfinite, ingested_at)
                   VALUES (?, ?, ?, now()::TIMESTAMP)
                   ON CONFLICT (epoch) DO UPDATE SET n_records = excluded.n_records,
                       n_nonfinite = excluded.n_nonfinite, ingested_at = excluded.ingested_at""",
                [epoch, int(len(ids)), int(n_nonfinite)],
            )
            failpoint("ingest", epoch)
        return True

    def epoch_rows(self) -> list[dict[str, Any]]:
        """The ``epochs`` table as dicts, by epoch."""
        cur = self.con.execute("SELECT * FROM epochs ORDER BY epoch")
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            d = dict(zip(cols, row))
            for k in ("params", "window_groups", "bounds"):
                if isinstance(d.get(k), str):
                    d[k] = json.loads(d[k])
            out.append(d)
        return out
