"""One rank's epoch as a DataLoader: its shards, pruned, decoded and batched in workers.

Every rank yields exactly ``steps`` batches of exactly ``batch_size`` samples
(DDP hangs when ranks disagree). The rank's shards (assigned by the planner,
balanced by kept samples) are split among DataLoader workers round-robin;
worker w yields ``quota[w]`` batches, the rank's steps split in proportion to
the kept samples of each worker's shards. A worker whose shards hold fewer
kept samples than its quota goes through them again (the repeats are trained
and recorded like any sample); one holding more stops early (the few left out
keep their scores). Everything is deterministic: shard order and the shuffle
buffer are seeded by (seed, epoch, rank, worker).

Samples reach the batch as dicts: the tar members (decoded if ``decode`` is
given), ``__key__``, ``__url__``, ``__sample_id__`` (int64) and ``__weight__``
(float32); batches are collated with ``torch.utils.data.default_collate``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from .errors import RunError
from .manifest import Manifest, read_manifest
from .planner import split_batches
from .reader import stock_kept

Decode = Callable[[dict[str, Any]], dict[str, Any]] | str | Sequence[Any] | None


def make_decoder(decode: Decode) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """A sample -> sample decoder from a callable, a webdataset image spec (``"pil"``,
    ``"torchrgb"``, ...) or a list of webdataset handlers/specs."""
    if decode is None or callable(decode):
        return decode  # type: ignore[return-value]
    specs = [decode] if isinstance(decode, str) else list(decode)
    handlers = [wds.autodecode.ImageHandler(x) if isinstance(x, str) else x for x in specs]
    return wds.autodecode.Decoder(handlers)


def shard_url(manifest: Manifest, index: int, data_root: str | None) -> str:
    """Where to read a shard: under ``data_root`` if given, else the URL the ledger was built from."""
    if data_root is None:
        return manifest.shard_urls[index]
    return posixpath.join(data_root, manifest.shard_names[index])


def worker_quotas(
    manifest: Manifest, shards: Sequence[int], steps: int, num_workers: int, batch_size: int
) -> list[int]:
    """Batches each worker yields (see :func:`seta_stream.planner.split_batches`)."""
    kept = [sum(manifest.shard_kept[i] for i in shards[w::num_workers]) for w in range(num_workers)]
    return split_batches(steps, kept, batch_size)


class EpochDataset(IterableDataset):  # type: ignore[type-arg]
    """The batches of one rank for one epoch (an IterableDataset of batches).

    Args:
        run_dir: The run directory holding the epoch's manifest.
        epoch: The epoch.
        shards: Indices (in the manifest) of this rank's shards.
        steps: Batches this rank yields.
        batch_size: Samples per batch.
        rank: This rank (seeds the order).
        seed: The run's seed.
        decode: See :func:`make_decoder`.
        transform: Called on each decoded sample dict; must return a dict
            (``__sample_id__`` and ``__weight__`` are kept either way).
        collate: Batch collation (default ``default_collate``).
        shuffle_buffer: Samples in the shuffle buffer (0: stream order).
        data_root: Read shards under this root instead of the ledger's URLs.
        read_samples: ``read_samples(manifest, shard_index, url)`` -> the kept
            samples of one shard (with ``__sample_id__``/``__weight__``), in
            order; default: webdataset's tar reader and the prune stage.
    """

    def __init__(
        self,
        *,
        run_dir: str,
        epoch: int,
        shards: Sequence[int],
        steps: int,
        batch_size: int,
        rank: int = 0,
        seed: int = 0,
        decode: Decode = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        shuffle_buffer: int = 1000,
        data_root: str | None = None,
        read_samples: Callable[[Manifest, int, str], Iterator[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.epoch = epoch
        self.shards = list(shards)
        self.steps = steps
        self.batch_size = batch_size
        self.rank = rank
        self.seed = seed
        self.decode = decode
        self.transform = transform
        self.collate = collate or default_collate
        self.shuffle_buffer = shuffle_buffer
        self.data_root = data_root
        self.read_samples = read_samples

    def __len__(self) -> int:
        return self.steps

    def _stock_reader(self, manifest: Manifest, index: int, url: str) -> Iterator[dict[str, Any]]:
        return stock_kept(self.run_dir, manifest, url, self.data_root)

    def _pass(self, manifest: Manifest, shards: list[int], rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        read = self.read_samples or self._stock_reader
        for i in rng.permutation(len(shards)):
            index = shards[int(i)]
            if manifest.shard_kept[index]:
                yield from read(manifest, index, shard_url(manifest, index, self.data_root))

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        manifest = read_manifest(self.run_dir, self.epoch)
        if manifest is None:
            raise RunError(f"epoch {self.epoch} has no manifest in {self.run_dir}")
        mine = self.shards[worker::num_workers]
        quota = worker_quotas(manifest, self.shards, self.steps, num_workers, self.batch_size)[worker] * self.batch_size
        if quota == 0:
            return
        if not any(manifest.shard_kept[i] for i in mine):
            raise RunError(f"rank {self.rank} worker {worker}: no kept samples in its shards but {quota} to yield")
        decoder = make_decoder(self.decode)
        stream_seed = [self.seed, self.epoch, self.rank, worker]

        def samples() -> Iterator[dict[str, Any]]:
            produced = 0
            for n_pass in range(1 << 30):
                rng = np.random.default_rng([*stream_seed, n_pass])
                for sample in self._pass(manifest, mine, rng):
                    yield sample
                    produced += 1
                    if produced == quota:
                        return

        stream: Iterator[dict[str, Any]] = samples()
        if self.shuffle_buffer > 1:
            shuffle_seed = int(np.random.SeedSequence(stream_seed).generate_state(1)[0])
            stream = wds.filters.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, seed=shuffle_seed)(stream)
        batch: list[Any] = []
        for sample in stream:
            sid, w = sample["__sample_id__"], sample["__weight__"]
            for fn in (decoder, self.transform):
                if fn is not None:
                    sample = fn(sample)
                    if not isinstance(sample, dict):
                        raise RunError(f"decode and transform must return a dict of fields, got {type(sample).__name__}")
            sample["__sample_id__"], sample["__weight__"] = sid, w
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate(batch)
                batch = []


def as_loader(dataset: EpochDataset, num_workers: int, **kwargs: Any) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    """A DataLoader over a rank's batches (batching happens in the workers)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers, **kwargs)
