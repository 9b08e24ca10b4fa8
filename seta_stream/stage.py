"""The prune stage: a webdataset pipeline stage that drops unselected samples before decoding.

Place it right after the tar reader (``group_by_keys``), before ``decode`` and
before any shuffle::

    stage = pruner.stage(epoch)                 # or seta_stream.prune_stage(run_dir, epoch)
    urls = pruner.shard_urls()                  # this rank's shards: no node splitter
    ds = wds.WebDataset(urls, shardshuffle=False, nodesplitter=None).compose(stage).decode("pil")
    # or: wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(), stage, wds.decode("pil"), ...)

It keeps the samples of the epoch's manifest and adds ``__sample_id__`` (an
int; int64 once batched) and ``__weight__`` (float32) to each. A sample is matched by its
position in its shard (as the ledger counted it) and its key is checked. In
each process (each DataLoader worker) the manifest rows of a shard are read
when the shard's first sample arrives, together with those of the next few
shards the worker will stream (webdataset deals worker w of N every Nth
shard), so memory follows the shards a worker streams, not the dataset. At the end of each shard the number of samples seen
is checked against the ledger; a mismatch means the shard changed since the
ledger was built and is an error naming the shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import get_worker_info
from webdataset.filters import pipelinefilter

from .errors import ManifestError, ShardError
from .manifest import Manifest, read_manifest
from .shards import ShardResolver


class PruneState:
    """What the stage needs in each process, and its counters.

    Picklable: it travels to DataLoader workers, each of which loads the
    manifest summary on first use and the rows of each shard it streams.

    Attributes:
        kept: Samples passed on (in this process).
        pruned: Samples dropped (in this process).
        shards_done: Shards completed and checked (in this process).
    """

    def __init__(self, run_dir: str, epoch: int, root: str | None = None) -> None:
        self.run_dir = run_dir
        self.epoch = epoch
        self.root = root
        self.kept = 0
        self.pruned = 0
        self.shards_done = 0
        self._manifest: Manifest | None = None
        self._resolver: ShardResolver | None = None

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_manifest"] = None
        d["_resolver"] = None
        return d

    @property
    def stride(self) -> int:
        """Shards between two that this process streams, as webdataset's ``split_by_worker`` deals them."""
        info = get_worker_info()
        return info.num_workers if info is not None else 1

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            m = read_manifest(self.run_dir, self.epoch)
            if m is None:
                raise ManifestError(f"epoch {self.epoch} has no manifest in {self.run_dir}; plan it first")
            self._manifest = m
        return self._manifest

    @property
    def resolver(self) -> ShardResolver:
        if self._resolver is None:
            m = self.manifest
            self._resolver = ShardResolver(m.shard_names, m.shard_urls, root=self.root)
        return self._resolver

    def shard_of(self, url: str) -> int:
        """Index in the manifest of the shard at ``url``.

        Raises:
            ShardError: no shard of the ledger matches the URL.
        """
        name = self.resolver(url)
        idx = None if name is None else self.manifest.shard_index(name)
        if idx is None:
            raise ShardError(url, "this shard is not in the ledger (build the ledger over the shards you train on)")
        return idx


def _check_count(state: PruneState, idx: int, seen: int) -> None:
    m = state.manifest
    total = m.shard_total[idx]
    if seen != total:
        raise ShardError(
            m.shard_names[idx],
            f"{seen} samples streamed but the ledger holds {total}; the shard changed since the ledger "
            "was built (rebuild the ledger)",
        )
    state.shards_done += 1


_ONE = np.float32(1.0)


def sample_weights(w: np.ndarray) -> list[np.float32]:
    """Per-sample float32 weights as a list; the common all-ones case shares one scalar."""
    return [_ONE] * len(w) if bool(np.all(w == 1.0)) else list(w.astype(np.float32))


def _prune(samples: Iterable[dict[str, Any]], state: PruneState) -> Iterator[dict[str, Any]]:
    """Keep the manifest's samples; see the module docstring."""
    url: str | None = None
    idx = -1
    pos = i = n_rows = 0
    next_pos = -1  # position of the next kept sample in the current shard
    keys: list[str] = []
    ids: list[int] = []
    weights: list[np.float32] = []
    finished: set[str] = set()
    kept = pruned = 0  # counted locally, published to state per shard: this loop runs per sample
    try:
        for sample in samples:
            u = sample["__url__"]
            if u != url:
                if url is not None:
                    _check_count(state, idx, pos)
                    finished.add(url)
                if u in finished:
                    raise ShardError(u, "samples arrive out of order: put the prune stage before any shuffle")
                url = u
                idx = state.shard_of(u)
                rows = state.manifest.rows(idx, spans=False, prefetch=16, stride=state.stride)
                want_pos, keys = rows.pos.tolist(), rows.keys
                ids, weights = rows.sample_ids.tolist(), sample_weights(rows.weights)
                n_rows = len(want_pos)
                pos = i = 0
                next_pos = want_pos[0] if n_rows else -1
            if pos == next_pos:
                if sample["__key__"] != keys[i]:
                    raise ShardError(
                        state.manifest.shard_names[idx],
                        f"sample {pos} has key {sample['__key__']!r} but the ledger says {keys[i]!r}; the shard "
                        "changed since the ledger was built (rebuild the ledger)",
                    )
                sample["__sample_id__"] = ids[i]
                sample["__weight__"] = weights[i]
                i += 1
                next_pos = want_pos[i] if i < n_rows else -1
                kept += 1
                pos += 1
                yield sample
            else:
                pruned += 1
                pos += 1
        if url is not None:
            _check_count(state, idx, pos)
    finally:
        state.kept += kept
        state.pruned += pruned


prune = pipelinefilter(_prune)
"""``prune(state)``: the stage as a webdataset filter (``DataPipeline`` or ``.compose``)."""


def prune_stage(run_dir: str, epoch: int, root: str | None = None) -> Any:
    """The prune stage for ``epoch`` of the run in ``run_dir``.

    Returns a webdataset filter; its ``state`` attribute (a :class:`PruneState`)
    holds the counters of the current process.
    """
    state = PruneState(run_dir, epoch, root)
    stage = prune(state)
    stage.state = state
    return stage
