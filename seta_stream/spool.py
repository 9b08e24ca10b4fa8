"""Loss parts: each rank's records of an epoch, spooled as Parquet at the epoch's end.

``RUN_DIR/losses/epoch=NNNNNN/rank=R.parquet`` holds ``sample_id`` (int64) and
``loss`` (float32) in the order recorded, and in its metadata the number of
non-finite losses dropped. Parts are written under a temporary name and
renamed, so a part left by a killed process is never mistaken for a whole one;
writing a part again replaces it. The parts stay after ingest, so SQL can
follow any sample's loss over the epochs (``seta-stream sql --run``).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from .files import commit_file, temp_name
from .errors import RunError

_SCHEMA = pa.schema([("sample_id", pa.int64()), ("loss", pa.float32())])


def part_path(run_dir: str, epoch: int, rank: int) -> str:
    return os.path.join(run_dir, "losses", f"epoch={epoch:06d}", f"rank={rank}.parquet")


def write_part(
    run_dir: str, epoch: int, rank: int, ids: NDArray[np.int64], losses: NDArray[np.float32], n_nonfinite: int
) -> str:
    """Write one rank's records of an epoch (replacing an earlier part)."""
    path = part_path(run_dir, epoch, rank)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    table = pa.table([pa.array(ids, pa.int64()), pa.array(losses, pa.float32())], schema=_SCHEMA)
    table = table.replace_schema_metadata({"n_nonfinite": str(int(n_nonfinite)), "rank": str(rank)})
    tmp = temp_name(path)
    pq.write_table(table, tmp, compression="zstd")
    commit_file(tmp, path)
    return path


def read_parts(run_dir: str, epoch: int, world_size: int) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
    """All ranks' records of an epoch, rank by rank: (ids, losses, non-finite count).

    Raises:
        RunError: a rank's part is missing.
    """
    ids, losses, dropped = [], [], 0
    missing = [r for r in range(world_size) if not os.path.exists(part_path(run_dir, epoch, r))]
    if missing:
        raise RunError(f"epoch {epoch}: no loss records from rank(s) {', '.join(map(str, missing))} in {run_dir}")
    for r in range(world_size):
        t = pq.read_table(part_path(run_dir, epoch, r))
        ids.append(t.column("sample_id").to_numpy())
        losses.append(t.column("loss").to_numpy())
        dropped += int((t.schema.metadata or {}).get(b"n_nonfinite", b"0"))
    return np.concatenate(ids), np.concatenate(losses), dropped
