"""The fast pruned reader: read only the kept samples of local shards, seeking over the rest.

The manifest carries each kept sample's byte span (from the ledger), so a
local, uncompressed shard is memory-mapped and only those spans are touched:
their headers are parsed with the index's lean parser (no ``tarfile``), and
each sample comes out as the same dict ``wds.WebDataset`` makes
(``__key__``, ``__url__``, extension -> bytes with suffixes lower-cased and
metadata members skipped, ``__local_path__``), plus ``__sample_id__`` and
``__weight__``; everything downstream is unchanged.

Shards that cannot be seeked (``pipe:``, ``http(s)://``, compressed) fall back
to streaming through webdataset's reader and the prune stage.

Before reading, the file's size is checked against the ledger, and every kept
sample's key against the manifest: a shard that changed is an error naming it.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any

from urllib.parse import urlparse

from webdataset.cache import StreamingOpen
from webdataset.tariterators import group_by_keys, tar_file_expander

from .errors import ShardError
from .manifest import Manifest
from .shards import is_remote
from .stage import PruneState, _prune, sample_weights
from .tarheaders import BufferSource, TarFormatError, is_meta, list_members, split_key


class FastReader:
    """``reader(manifest, shard_index, url)`` -> the shard's kept samples, in order.

    Args:
        run_dir: The run directory (for the streaming fallback's prune stage).
        data_root: Shards are read under this root (passed to the fallback).
        fallback: Stream shards that cannot be seeked through webdataset;
            with False such a shard is an error.
    """

    def __init__(self, run_dir: str, data_root: str | None = None, fallback: bool = True) -> None:
        self.run_dir = run_dir
        self.data_root = data_root
        self.fallback = fallback

    def __call__(self, manifest: Manifest, index: int, url: str) -> Iterator[dict[str, Any]]:
        local = None if is_remote(url) else (url[7:] if url.startswith("file://") else url)
        if local is not None and manifest.shard_seekable[index] and os.path.exists(local):
            return read_kept(manifest, index, url, local)
        if not self.fallback:
            raise ShardError(manifest.shard_names[index], f"cannot seek in {url} (not a local, uncompressed tar)")
        return stock_kept(self.run_dir, manifest, url, self.data_root)


def stock_samples(url: str) -> Iterator[dict[str, Any]]:
    """Every sample of one shard exactly as ``wds.WebDataset`` yields it (tarfile reader)."""
    streams = StreamingOpen()([{"url": url}])
    return group_by_keys(tar_file_expander(streams))


def stock_kept(run_dir: str, manifest: Manifest, url: str, data_root: str | None) -> Iterator[dict[str, Any]]:
    """The kept samples of one shard through webdataset's reader and the prune stage."""
    state = PruneState(run_dir, manifest.epoch, root=data_root)
    state._manifest = manifest
    return _prune(stock_samples(url), state)


def read_kept(manifest: Manifest, index: int, url: str, path: str) -> Iterator[dict[str, Any]]:
    """The kept samples of one local shard, read by seeking to their spans."""
    name = manifest.shard_names[index]
    rows = manifest.rows(index)
    if len(rows) == 0:
        return
    local_path = urlparse(url).path  # as webdataset's reader adds it for local files
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        want = manifest.shard_bytes[index]
        if want and size != want:
            raise ShardError(name, f"file is {size} bytes but the ledger indexed {want}; the shard changed "
                                   "since the ledger was built (rebuild the ledger)")  # fmt: skip
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        src = BufferSource(mm)
        offsets, lengths = rows.offsets.tolist(), rows.nbytes.tolist()
        ids, weights, keys = rows.sample_ids.tolist(), sample_weights(rows.weights), rows.keys
        for j in range(len(keys)):
            off = offsets[j]
            try:
                members = list_members(src, off, off + lengths[j], want_data=True, verify=False)
            except TarFormatError as e:
                raise ShardError(name, f"{e.reason} (the shard changed since the ledger was built?)", e.offset) from None
            sample: dict[str, Any] = {"__key__": None, "__url__": url, "__local_path__": local_path}
            for mname, _h, _d, _s, data in members:
                if mname[:2] == "__" and is_meta(mname):
                    continue
                parts = split_key(mname)
                if parts is None:
                    continue
                if sample["__key__"] is None:
                    sample["__key__"] = parts[0]
                sample[parts[1].lower()] = data
            if sample["__key__"] != keys[j]:
                raise ShardError(name, f"the sample at byte {off} has key {sample['__key__']!r} but the ledger says "
                                       f"{keys[j]!r}; the shard changed since the ledger was built", off)  # fmt: skip
            sample["__local_path__"] = sample.pop("__local_path__")  # key order as webdataset's
            sample["__sample_id__"] = ids[j]
            sample["__weight__"] = weights[j]
            yield sample
    finally:
        del src
        mm.close()
