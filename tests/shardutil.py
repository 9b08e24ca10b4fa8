"""Helpers that write real shards for tests: webdataset's ShardWriter, GNU tar, tarfile."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterable, Sequence

import webdataset as wds


def write_wds(
    outdir: str, n_samples: int, per_shard: int, prefix: str = "train", payload: int = 64, start: int = 0
) -> list[str]:
    """Write samples ``{prefix}-NNNNNN.tar`` with ShardWriter; returns shard paths in order."""
    os.makedirs(outdir, exist_ok=True)
    pattern = os.path.join(outdir, f"{prefix}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as w:
        for i in range(start, start + n_samples):
            w.write({"__key__": f"s{i:07d}", "bin": bytes([i % 251]) * payload, "cls": str(i % 10).encode()})
    return sorted(os.path.join(outdir, f) for f in os.listdir(outdir) if f.startswith(prefix + "-"))


def write_tarfile(path: str, members: Sequence[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT,
                  dirs: Iterable[str] = ()) -> str:  # fmt: skip
    """Write members (name, data) in order with Python's tarfile; ``dirs`` adds directory entries first."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def write_gnu_tar(path: str, srcdir: str, fmt: str) -> str:
    """Archive ``srcdir``'s contents with GNU tar in format ``fmt`` (gnu, pax, ustar, v7), sorted by name."""
    subprocess.run(
        ["tar", f"--format={fmt}", "--sort=name", "--mtime=@1700000000", "-cf", os.path.abspath(path), "."],
        cwd=srcdir,
        check=True,
        capture_output=True,
    )
    return path


def wds_rows(urls: Sequence[str]) -> list[tuple[str, str]]:
    """(url, key) of every sample webdataset yields, in order."""
    ds = wds.WebDataset(list(urls), shardshuffle=False, empty_check=False)
    return [(s["__url__"], s["__key__"]) for s in ds]


def wds_samples(urls: Sequence[str]) -> list[dict]:
    ds = wds.WebDataset(list(urls), shardshuffle=False, empty_check=False)
    return list(ds)
