"""Build or extend a ledger from shards: ``seta-stream build-ledger``.

Shards are indexed in parallel worker processes (:mod:`seta_stream.tarindex`)
and written into the ledger in shard order, in one transaction: a build that
fails or is interrupted leaves the previous ledger as it was (a new ledger is
built under a temporary name and renamed into place at the end).

Re-running on a ledger adds the shards it does not hold yet (existing
``sample_id`` values never change), retries shards recorded as bad, and refuses
shards whose fingerprint changed since they were indexed (``rebuild=True``
builds a fresh ledger instead).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from .errors import SetaStreamError, ShardError
from .files import temp_name
from .ledger import Ledger, fetch_one
from .shards import ShardRef, expand_shards, probe_fingerprint
from .tarindex import ShardIndex, index_shard

_FLUSH_ROWS = 500_000


@dataclass
class BuildSummary:
    """What a build did (printed by the CLI at the end)."""

    ledger: str
    shards_indexed: int = 0
    shards_unchanged: int = 0
    shards_total: int = 0
    samples_added: int = 0
    samples_total: int = 0
    bytes_indexed: int = 0
    duplicate_keys: int = 0
    bad_shards: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples_added / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [
            f"ledger      {self.ledger}",
            f"shards      {self.shards_total:,} in ledger ({self.shards_indexed:,} indexed now, "
            f"{self.shards_unchanged:,} unchanged)",
            f"samples     {self.samples_total:,} in ledger ({self.samples_added:,} added, "
            f"{self.samples_per_s:,.0f} samples/s)",
            f"bytes       {self.bytes_indexed:,} indexed now",
            f"duplicates  {self.duplicate_keys:,} keys appear in more than one shard (allowed: identity is shard + key)",
            f"bad shards  {len(self.bad_shards)}",
        ]
        out += [f"  {name}: {err}" for name, err in self.bad_shards]
        out.append(f"time        {self.seconds:.1f} s")
        return out


def _index_or_error(ref: ShardRef) -> ShardIndex | ShardError:
    try:
        return index_shard(ref)
    except ShardError as e:
        return e


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """Indexing processes, forked all at once. Call before opening the ledger:
    DuckDB is not fork-safe, and forking needs no main-module guard in the
    user's script (``forkserver``/``spawn`` do). Elsewhere than Linux: spawn."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method))
    for fut in [pool.submit(int) for _ in range(workers)]:
        fut.result()
    return pool


def _indexed(
    refs: Sequence[ShardRef], pool: ProcessPoolExecutor | None, workers: int
) -> Iterator[tuple[ShardRef, ShardIndex | ShardError]]:
    """Index shards, yielding results in the given order."""
    if pool is None or len(refs) <= 1:
        for ref in refs:
            yield ref, _index_or_error(ref)
        return
    pending: deque[tuple[ShardRef, Future[ShardIndex | ShardError]]] = deque()
    it = iter(refs)
    try:
        for ref in it:
            pending.append((ref, pool.submit(_index_or_error, ref)))
            if len(pending) >= 4 * workers:
                break
        while pending:
            ref, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_index_or_error, nxt)))
            yield ref, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()


def _sample_table(shard_id: int, first: int, idx: ShardIndex) -> pa.Table:
    n = len(idx)
    return pa.table(
        {
            "sample_id": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "shard_id": pa.array(np.full(n, shard_id, dtype=np.int32)),
            "pos": pa.array(np.arange(n, dtype=np.int32)),
            "key": pa.array(idx.keys, type=pa.string()),
            "byte_offset": pa.array(idx.offsets),
            "nbytes": pa.array(idx.nbytes),
            "exts": pa.array(idx.exts, type=pa.string()),
        }
    )


def _plan_existing(ledger: Ledger, refs: Sequence[ShardRef]) -> tuple[list[ShardRef], dict[str, str], int]:
    """Decide which shards to index on an existing ledger.

    Rows of shards recorded as bad are deleted (they are indexed again).
    Returns (to index, expected fingerprints of shards that must be re-read to
    compare, number unchanged).
    """
    existing = {s.name: s for s in ledger.shards()}
    todo: list[ShardRef] = []
    verify: dict[str, str] = {}
    unchanged = 0
    for ref in refs:
        row = existing.get(ref.name)
        if row is None or row.status != "ok":
            if row is not None:
                ledger.delete_shard(ref.name)
            todo.append(ref)
            continue
        fp = probe_fingerprint(ref)
        if fp is None:  # pipe: cannot be probed; read it again and compare
            todo.append(ref)
            verify[ref.name] = row.fingerprint
        elif fp != row.fingerprint:
            raise SetaStreamError(_changed(ref.name, row.fingerprint, fp))
        else:
            unchanged += 1
            if row.url != ref.url:
                ledger.con.execute("UPDATE shards SET url = ? WHERE name = ?", [ref.url, ref.name])
    return todo, verify, unchanged


def _changed(name: str, old: str, new: str) -> str:
    return (
        f"shard {name} changed since the ledger was built ({old} -> {new}); "
        "pass --rebuild to build a fresh ledger (scores are reset)"
    )


def build_ledger(
    specs: str | Iterable[str],
    ledger_path: str,
    *,
    root: str | None = None,
    workers: int | None = None,
    skip_bad: bool = False,
    rebuild: bool = False,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> BuildSummary:
    """Index shards into a ledger.

    Args:
        specs: Shard specs (see :mod:`seta_stream.shards`).
        ledger_path: The DuckDB file; created if missing.
        root: Dataset root for shard names (default: their common directory).
        workers: Processes indexing shards (default: CPU count).
        skip_bad: Record unreadable shards as ``bad`` and build the rest,
            instead of failing on the first one.
        rebuild: Build a fresh ledger even if one exists (new ids, no scores).
        progress: Show a progress bar on stderr.
        on_progress: Called with (shards done, samples done) after each shard.

    Returns:
        What was built.

    Raises:
        ShardError: a shard is unreadable and ``skip_bad`` is False.
        SetaStreamError: a shard changed since it was indexed, or bad specs.
    """
    t0 = time.perf_counter()
    refs = expand_shards(specs, root)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    summary = BuildSummary(ledger=ledger_path)
    fresh = rebuild or not os.path.exists(ledger_path)
    target = temp_name(ledger_path) if fresh else ledger_path
    if fresh:
        _remove_db(target)
    ok = False
    ledger: Ledger | None = None
    workers = min(workers, len(refs))
    pool = _start_pool(workers) if workers > 1 else None
    try:
        ledger = Ledger.create(target) if fresh else Ledger.open(ledger_path)
        with ledger.transaction():
            if fresh:
                todo, verify, summary.shards_unchanged = list(refs), {}, 0
            else:
                todo, verify, summary.shards_unchanged = _plan_existing(ledger, refs)
            _index_into(ledger, todo, verify, pool, workers, skip_bad, progress, on_progress, summary)
        summary.shards_total = len(ledger.shards())
        summary.samples_total = ledger.num_samples()
        row = fetch_one(ledger.con, "SELECT count(*) FROM (SELECT key FROM samples GROUP BY key HAVING count(*) > 1)")
        summary.duplicate_keys = int(row[0]) if row else 0
        ok = True
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if ledger is not None:
            ledger.close()
        if fresh:
            if ok:
                _remove_wal(ledger_path)
                os.replace(target, ledger_path)
                _remove_wal(target)
            else:
                _remove_db(target)
    summary.seconds = time.perf_counter() - t0
    return summary


def _index_into(
    ledger: Ledger,
    todo: list[ShardRef],
    verify: dict[str, str],
    pool: ProcessPoolExecutor | None,
    workers: int,
    skip_bad: bool,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    summary: BuildSummary,
) -> None:
    shard_id, next_sample = ledger.next_ids()
    shard_rows: list[dict[str, object]] = []
    batch: list[pa.Table] = []
    batch_rows = 0

    def flush() -> None:
        nonlocal batch, batch_rows
        if shard_rows:
            ledger.insert_shards(shard_rows)
            shard_rows.clear()
        if batch:
            ledger.insert_samples(pa.concat_tables(batch))
            batch, batch_rows = [], 0

    bar = tqdm(total=len(todo), unit="shard", disable=not progress or not todo, dynamic_ncols=True, desc="indexing")
    t0 = time.perf_counter()
    last_post = 0.0
    try:
        for done, (ref, result) in enumerate(_indexed(todo, pool, workers), 1):
            if isinstance(result, ShardError):
                if not skip_bad:
                    raise result
                shard_rows.append(dict(
                    shard_id=shard_id, name=ref.name, url=ref.url, status="bad", error=result.args[0],
                    n_samples=0, first_sample_id=next_sample, nbytes=0, fingerprint="", seekable=False,
                ))  # fmt: skip
                summary.bad_shards.append((ref.name, result.args[0]))
                shard_id += 1
            elif ref.name in verify:
                if verify[ref.name] != result.fingerprint:
                    raise SetaStreamError(_changed(ref.name, verify[ref.name], result.fingerprint))
                summary.shards_unchanged += 1
            else:
                n = len(result)
                shard_rows.append(dict(
                    shard_id=shard_id, name=ref.name, url=ref.url, status="ok", error=None, n_samples=n,
                    first_sample_id=next_sample, nbytes=result.size, fingerprint=result.fingerprint,
                    seekable=result.seekable,
                ))  # fmt: skip
                batch.append(_sample_table(shard_id, next_sample, result))
                batch_rows += n
                shard_id += 1
                next_sample += n
                summary.samples_added += n
                summary.shards_indexed += 1
                summary.bytes_indexed += result.size
                if batch_rows >= _FLUSH_ROWS:
                    flush()
            bar.update(1)
            now = time.perf_counter()
            if now - last_post > 0.5 or done == len(todo):
                rate = summary.samples_added / max(now - t0, 1e-9)
                bar.set_postfix_str(f"{summary.samples_added:,} samples, {rate:,.0f} samples/s", refresh=False)
                last_post = now
            if on_progress is not None:
                on_progress(done, summary.samples_added)
        flush()
    finally:
        bar.close()


def _remove_wal(path: str) -> None:
    try:
        os.remove(path + ".wal")
    except FileNotFoundError:
        pass


def _remove_db(path: str) -> None:
    for p in (path, path + ".wal"):
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
