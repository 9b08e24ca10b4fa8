"""Manifests: the immutable record of which samples an epoch trains on.

Layout in a run directory::

    RUN_DIR/manifests/epoch=000003/manifest.parquet
    RUN_DIR/manifests/epoch=000003/summary.json

``manifest.parquet`` holds one row per selected sample, sorted by sample id
(so by shard, then position): ``shard`` (its name), ``key``,
``sample_id`` (int64), ``pos`` (int32, position in the shard), ``byte_offset``
and ``nbytes`` (the sample's span in the tar), ``weight`` (float32). Each shard's
rows form one row group, so a DataLoader worker reads only its own shards'
rows.

``summary.json`` holds the epoch, policy, parameters, seed, schema version, the
ledger's fingerprint, the policy's stats (groups, window, threshold), per shard
its name, URL, total and kept samples and row group, the assignment of shards
to ranks for ``world_size`` and the batches every rank yields for
``batch_size``, and the SHA-256 of the Parquet file.

Both files are written to temporary names and renamed into place, summary
last: a manifest exists once its summary does. Planning an epoch that already
has a manifest returns it unchanged; planning is deterministic, so re-planning
after a crash writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from .files import atomic_write, commit_file, differing_fields, read_versioned_json, temp_name
from .config import PolicyConfig
from .errors import ManifestError
from .failpoints import failpoint
from .ledger import Ledger
from .planner import assign_shards, plan, steps_per_rank

SCHEMA_VERSION = 1
_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("key", pa.string()),
        ("sample_id", pa.int64()),
        ("pos", pa.int32()),
        ("byte_offset", pa.int64()),
        ("nbytes", pa.int64()),
        ("weight", pa.float32()),
    ]
)


# Thousands of small row groups (one per shard) make per-column-chunk costs
# dominate: increasing integers are delta-encoded, repetitive columns
# dictionary-encoded, and only the keys are compressed.
_WRITE_OPTIONS: dict[str, Any] = dict(
    compression={"key": "zstd", "shard": "none", "sample_id": "none", "pos": "none", "byte_offset": "none",
                 "nbytes": "none", "weight": "none"},
    use_dictionary=["shard", "nbytes", "weight"],
    column_encoding={"sample_id": "DELTA_BINARY_PACKED", "pos": "DELTA_BINARY_PACKED",
                     "byte_offset": "DELTA_BINARY_PACKED"},
    write_statistics=False,
)  # fmt: skip


def _column(values: Any, type_: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """An Arrow column of ``type_`` from an Arrow array or column, a numpy array or a list."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(type_)
    return pa.array(values, type_)


def epoch_dir(run_dir: str, epoch: int) -> str:
    return os.path.join(run_dir, "manifests", f"epoch={epoch:06d}")


@dataclass(frozen=True)
class ShardRows:
    """The selected samples of one shard, in stream order."""

    pos: NDArray[np.int32]
    keys: list[str]
    sample_ids: NDArray[np.int64]
    weights: NDArray[np.float32]
    offsets: NDArray[np.int64]
    nbytes: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.pos)


class Manifest:
    """A written manifest: its summary, and its rows read a shard at a time."""

    def __init__(self, directory: str, summary: dict[str, Any]) -> None:
        self.directory = directory
        self.summary = summary
        sh = summary["shards"]
        self.shard_names: list[str] = sh["names"]
        self.shard_urls: list[str] = sh["urls"]
        self.shard_total: list[int] = sh["total"]
        self.shard_kept: list[int] = sh["kept"]
        self.shard_seekable: list[bool] = sh["seekable"]
        self.shard_bytes: list[int] = sh["bytes"]
        self._row_group: list[int] = sh["row_group"]
        self._index = {n: i for i, n in enumerate(self.shard_names)}
        self._file: pq.ParquetFile | None = None
        self._cache: dict[tuple[int, bool], ShardRows] = {}

    @property
    def epoch(self) -> int:
        return int(self.summary["epoch"])

    @property
    def n_selected(self) -> int:
        return int(self.summary["n_selected"])

    @property
    def n_samples(self) -> int:
        return int(self.summary["n_samples"])

    @property
    def ledger_fingerprint(self) -> str:
        return str(self.summary["ledger_fingerprint"])

    @property
    def uniform_weights(self) -> bool:
        return bool(self.summary["uniform_weights"])

    def shard_index(self, name: str) -> int | None:
        return self._index.get(name)

    def assignment(self, world_size: int) -> list[list[int]]:
        """Shard indices per rank (kept samples balanced); recomputed for another world size."""
        if int(self.summary.get("world_size", 0)) == world_size:
            return [list(x) for x in self.summary["assignment"]]
        return assign_shards(self.shard_kept, world_size)

    def steps(self, world_size: int, batch_size: int) -> int:
        """Batches every rank yields (the same on all ranks)."""
        return steps_per_rank(self.n_selected, world_size, batch_size)

    def rows(self, shard: int | str, spans: bool = True, prefetch: int = 1, stride: int = 1) -> ShardRows:
        """The selected rows of one shard (by index or name), reading only row groups of shards.

        Args:
            shard: Index or name.
            spans: Also read the byte offsets and sizes (a seeking reader needs
                them; the prune stage does not).
            prefetch: Read the row groups of this many shards in one call: this
                one and the next ones at ``stride`` (a worker of N streams every
                Nth shard); the others wait in a small cache until asked for.
                One read per shard costs more than the rows themselves when
                shards are small.
            stride: See ``prefetch``.
        """
        i = shard if isinstance(shard, int) else self._index.get(shard)
        if i is None:
            raise ManifestError(f"shard {shard} is not in the manifest of epoch {self.epoch}")
        cached = self._cache.pop((i, spans), None)
        if cached is not None:
            return cached
        empty = np.zeros(0, np.int64)
        if self._row_group[i] < 0:
            return ShardRows(np.zeros(0, np.int32), [], empty, np.zeros(0, np.float32), empty, empty)
        if self._file is None:
            self._file = pq.ParquetFile(os.path.join(self.directory, "manifest.parquet"))
        want = [j for j in range(i, len(self._row_group), max(stride, 1))[:prefetch] if self._row_group[j] >= 0]
        cols = ["key", "sample_id", "pos", "weight"] + (["byte_offset", "nbytes"] if spans else [])
        t = self._file.read_row_groups([self._row_group[j] for j in want], columns=cols, use_threads=False)
        pos, ids, weights = (t.column(c).to_numpy() for c in ("pos", "sample_id", "weight"))
        keys = t.column("key").to_pylist()
        offsets = t.column("byte_offset").to_numpy() if spans else None
        nbytes = t.column("nbytes").to_numpy() if spans else None
        start = 0
        for j in want:
            end = start + self.shard_kept[j]
            rows = ShardRows(pos[start:end], keys[start:end], ids[start:end], weights[start:end],
                             offsets[start:end] if offsets is not None else empty,
                             nbytes[start:end] if nbytes is not None else empty)  # fmt: skip
            if j == i:
                out = rows
            elif len(self._cache) < 4 * prefetch:
                self._cache[(j, spans)] = rows
            start = end
        return out

    def table(self) -> pa.Table:
        """All rows (for inspection and tests; workers use :meth:`rows`)."""
        return pq.read_table(os.path.join(self.directory, "manifest.parquet"))


def read_manifest(run_dir: str, epoch: int) -> Manifest | None:
    """The manifest of ``epoch``, or None if it was not (completely) written.

    Raises:
        ManifestError: the summary is unreadable or of another schema version.
    """
    d = epoch_dir(run_dir, epoch)
    summary = read_versioned_json(os.path.join(d, "summary.json"), SCHEMA_VERSION, ManifestError)
    return None if summary is None else Manifest(d, summary)


def check_manifest(m: Manifest, fingerprint: str, config: PolicyConfig) -> None:
    """Refuse a manifest planned from another ledger or with other parameters."""
    if m.ledger_fingerprint != fingerprint:
        raise ManifestError(
            f"manifest of epoch {m.epoch} in {m.directory} was planned from another ledger "
            f"(fingerprint {m.ledger_fingerprint}, this ledger {fingerprint})"
        )
    diff = differing_fields(m.summary["params"], config.to_dict())
    if diff:
        raise ManifestError(
            f"manifest of epoch {m.epoch} in {m.directory} was planned with other parameters ({', '.join(diff)})"
        )


@dataclass(frozen=True)
class ShardInfo:
    """What the manifest records of each good shard of the ledger."""

    name: str
    url: str
    total: int
    seekable: bool
    nbytes: int = 0


def write_manifest(
    directory: str,
    *,
    shard_index: NDArray[np.int32],
    keys: pa.Array,
    sample_ids: NDArray[np.int64],
    pos: pa.Array,
    offsets: pa.Array,
    nbytes: pa.Array,
    weights: NDArray[np.float32],
    shards: list[ShardInfo],
    header: dict[str, Any],
    world_size: int = 1,
    batch_size: int | None = None,
) -> Manifest:
    """Write a manifest from per-row arrays (sorted by sample id) and return it.

    ``shard_index`` gives each row's index into ``shards``; ``header`` holds
    the epoch-level fields of the summary (epoch, policy, params, seed,
    ledger_fingerprint, n_samples, stats). The Parquet file goes first, then
    the summary, each under a temporary name renamed into place.
    """
    names = [s.name for s in shards]
    kept = np.bincount(shard_index, minlength=len(shards)).astype(np.int64)
    table = pa.table(
        [
            # plain strings: Parquet dictionary-encodes each row group's single name itself
            pa.array(names, pa.string()).take(pa.array(shard_index, pa.int32())),
            _column(keys, pa.string()),
            _column(sample_ids, pa.int64()),
            _column(pos, pa.int32()),
            _column(offsets, pa.int64()),
            _column(nbytes, pa.int64()),
            _column(weights, pa.float32()),
        ],
        schema=_SCHEMA,
    )
    os.makedirs(directory, exist_ok=True)
    parquet_path = os.path.join(directory, "manifest.parquet")
    tmp = temp_name(parquet_path)
    row_group = np.full(len(shards), -1, dtype=np.int64)
    with pq.ParquetWriter(tmp, _SCHEMA, **_WRITE_OPTIONS) as w:
        start = 0
        for rg, i in enumerate(np.flatnonzero(kept)):  # one row group per shard
            n = int(kept[i])
            w.write_table(table.slice(start, n))
            row_group[i] = rg
            start += n
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
        size = f.tell()
    commit_file(tmp, parquet_path)
    failpoint("manifest_write", header.get("epoch"))
    summary = {
        "schema_version": SCHEMA_VERSION,
        **header,
        "n_selected": int(len(sample_ids)),
        "uniform_weights": bool(np.all(weights == 1.0)),
        "world_size": world_size,
        "batch_size": batch_size,
        "assignment": assign_shards(kept, world_size),
        "steps_per_rank": steps_per_rank(len(sample_ids), world_size, batch_size) if batch_size else None,
        "manifest": {"file": "manifest.parquet", "bytes": size, "sha256": digest},
        "shards": {
            "names": names,
            "urls": [s.url for s in shards],
            "total": [int(s.total) for s in shards],
            "kept": [int(x) for x in kept],
            "seekable": [bool(s.seekable) for s in shards],
            "bytes": [int(s.nbytes) for s in shards],
            "row_group": [int(x) for x in row_group],
        },
    }
    atomic_write(os.path.join(directory, "summary.json"), json.dumps(summary, sort_keys=True, indent=1).encode())
    return Manifest(directory, summary)


def plan_epoch(
    ledger: Ledger,
    run_dir: str,
    epoch: int,
    config: PolicyConfig,
    *,
    world_size: int = 1,
    batch_size: int | None = None,
) -> Manifest:
    """Plan ``epoch`` from the ledger's current scores and write its manifest.

    If the epoch already has a manifest it is returned unchanged (after
    checking it belongs to this ledger and config). The plan is recorded in the
    ledger's ``epochs`` table either way.

    Raises:
        ManifestError: an existing manifest from another ledger or config.
        ValueError: bad epoch, NaN/inf scores.
    """
    fingerprint = ledger.fingerprint()
    existing = read_manifest(run_dir, epoch)
    if existing is not None:
        check_manifest(existing, fingerprint, config)
        _record(ledger, existing, config)
        return existing
    scores, seen = ledger.read_scores("ema" if config.score == "ema" else "loss")
    selection = plan(scores, seen, epoch, config)
    del scores, seen
    ok = ledger.shards(status="ok")
    rows = ledger.sample_rows(selection.ids)
    dense = np.full(max((s.shard_id for s in ok), default=-1) + 1, -1, dtype=np.int32)
    dense[[s.shard_id for s in ok]] = np.arange(len(ok), dtype=np.int32)
    m = write_manifest(
        epoch_dir(run_dir, epoch),
        shard_index=dense[rows.column("shard_id").to_numpy()],
        keys=rows.column("key"),
        sample_ids=selection.ids,
        pos=rows.column("pos"),
        offsets=rows.column("byte_offset"),
        nbytes=rows.column("nbytes"),
        weights=selection.weights,
        shards=[ShardInfo(s.name, s.url, s.n_samples, s.seekable, s.nbytes) for s in ok],
        header={
            "epoch": epoch,
            "policy": config.policy,
            "params": config.to_dict(),
            "seed": config.seed,
            "ledger_fingerprint": fingerprint,
            "n_samples": int(selection.stats["n_samples"]),
            "stats": selection.stats,
        },
        world_size=world_size,
        batch_size=batch_size,
    )
    _record(ledger, m, config)
    return m


def _record(ledger: Ledger, m: Manifest, config: PolicyConfig) -> None:
    stats = m.summary["stats"]
    groups = stats.get("groups")
    ledger.record_plan(
        epoch=m.epoch,
        policy=config.policy,
        params=config.to_dict(),
        n_samples=m.n_samples,
        n_selected=m.n_selected,
        window=stats.get("window"),
        bounds=[[g["lo"], g["hi"]] for g in groups] if groups else None,
    )
