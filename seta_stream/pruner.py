"""``Pruner``: the three-line integration of dynamic pruning into a training loop.

    pruner = seta_stream.Pruner(run_dir, ledger="train.duckdb", config="configs/toca.yaml")
    for epoch in range(pruner.start_epoch, epochs):
        loader = pruner.loader(epoch, batch_size=256, num_workers=8, decode="torchrgb")
        for batch in loader:
            loss = pruner.update(criterion(model(x), y), batch)   # per-sample losses in, weighted mean out
            loss.backward(); ...
        pruner.end_epoch()

At each epoch's end every rank spools its records to the run directory; rank 0
alone opens the ledger, merges them in one transaction and plans the next
epoch, while the other ranks wait at a barrier; then all read the new
manifest. DataLoader workers never open the ledger, and between epochs it is
closed, so ``seta-stream sql`` works while a run goes on.

Starting a Pruner on a run directory that already has epochs picks up where it
stands: manifests are immutable, ingest is idempotent, and planning is
deterministic, so re-running an epoch from the last checkpoint reproduces it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .files import atomic_write, differing_fields
from .config import Config, PolicyConfig, load_config
from .dist import Coordinator, rank_and_world
from .errors import RunError
from .failpoints import failpoint
from .ledger import Ledger
from .loader import Decode, EpochDataset, as_loader, shard_url
from .manifest import Manifest, check_manifest, plan_epoch, read_manifest
from .recorder import LossRecorder, as_ids
from .run import bind_run, read_run
from .spool import read_parts, write_part
from .stage import prune_stage

_MISSING_STAGE = (
    "the batch has no __sample_id__: the prune stage is missing from the pipeline "
    "(iterate pruner.loader(epoch, ...), or put pruner.stage(epoch) right after the tar reader)"
)


def _first_missing(done: set[int]) -> int:
    """The smallest epoch not in ``done``."""
    e = 0
    while e in done:
        e += 1
    return e


@dataclass(frozen=True)
class EpochReport:
    """What an epoch did, returned by :meth:`Pruner.end_epoch`.

    Attributes:
        epoch: The epoch.
        planned: Samples its manifest selected.
        records: Loss records this rank made (sample-steps run).
        nonfinite: NaN/inf losses dropped on this rank.
        sample_steps: Sample-steps of all ranks this epoch (rank 0; else this rank's).
        saved_fraction: 1 - (sample-steps so far) / (N * epochs so far), all ranks.
    """

    epoch: int
    planned: int
    records: int
    nonfinite: int
    sample_steps: int
    saved_fraction: float


class Pruner:
    """Dynamic sample pruning for a streaming training loop.

    Args:
        run_dir: The run's directory, shared by all ranks (created if missing).
        ledger: The ledger file (read and written by rank 0 only).
        config: A YAML path, a dict, a :class:`Config` or a :class:`PolicyConfig`.
        data_root: Read shards as ``data_root/<shard name>`` instead of the
            URLs the ledger was built from (data moved, or read from a bucket).
        reader: ``auto`` (a seek-based reader for local shards, webdataset's
            otherwise), ``fast`` or ``webdataset``.
        barrier_timeout: Seconds ranks wait for each other at epoch ends.

    Raises:
        RunError: the run directory belongs to another ledger or config, or
            the ledger's scores belong to another run.
    """

    def __init__(
        self,
        run_dir: str,
        *,
        ledger: str,
        config: str | os.PathLike[str] | dict[str, Any] | Config | PolicyConfig,
        data_root: str | None = None,
        reader: str = "auto",
        barrier_timeout: float = 1800.0,
    ) -> None:
        if reader not in ("auto", "fast", "webdataset"):
            raise ValueError(f"reader must be auto, fast or webdataset, got {reader!r}")
        self.run_dir = run_dir
        self.ledger_path = ledger
        self.config = load_config(config)
        self.policy = self.config.policy
        self.data_root = data_root
        self.reader = reader
        self.rank, self.world_size = rank_and_world()
        self._coord = Coordinator(self.rank, self.world_size, barrier_timeout)
        if self.rank == 0:
            with Ledger.open(ledger) as lg:
                self._run = bind_run(lg, run_dir, self.policy)
                self._write_progress(lg)
        self._coord.barrier("start of the run")
        if self.rank != 0:
            info = read_run(run_dir)
            if info is None:
                raise RunError(f"rank {self.rank}: {run_dir} has no run.json; rank 0 must share the run directory")
            diff = differing_fields(info.config, self.policy.to_dict())
            if diff:
                raise RunError(f"rank {self.rank}: run directory {run_dir} was written with another config "
                               f"(differs in {', '.join(diff)})")  # fmt: skip
            self._run = info
        self.epoch: int | None = None
        self.manifest: Manifest | None = None
        self.steps_this_epoch: int | None = None
        self.batch_size: int | None = None
        self._recorder: LossRecorder | None = None

    # -- where the run stands ------------------------------------------------------

    def _write_progress(self, lg: Ledger) -> None:
        rows = [r for r in lg.epoch_rows() if r["ingested_at"] is not None]
        doc = {
            "n_samples": lg.num_samples(),
            "epochs": self.policy.epochs,
            "ingested": {str(r["epoch"]): {"records": r["n_records"], "nonfinite": r["n_nonfinite"]} for r in rows},
        }
        atomic_write(os.path.join(self.run_dir, "progress.json"), json.dumps(doc, sort_keys=True).encode())

    def progress(self) -> dict[str, Any]:
        """Samples, epochs ingested and their record counts (from ``progress.json``)."""
        with open(os.path.join(self.run_dir, "progress.json"), encoding="utf-8") as f:
            return json.load(f)  # type: ignore[no-any-return]

    @property
    def start_epoch(self) -> int:
        """The first epoch not ingested yet: where a restarted run continues."""
        return _first_missing({int(e) for e in self.progress()["ingested"]})

    @property
    def saved_fraction(self) -> float:
        """1 - (sample-steps of ingested epochs) / (N * their number)."""
        p = self.progress()
        eps = p["ingested"]
        if not eps or not p["n_samples"]:
            return 0.0
        return 1.0 - sum(v["records"] for v in eps.values()) / (p["n_samples"] * len(eps))

    # -- epochs --------------------------------------------------------------------

    def _manifest_for(self, epoch: int, batch_size: int | None) -> Manifest:
        if self.epoch is not None and self.epoch != epoch:
            raise RunError(f"epoch {self.epoch} was not ended: call end_epoch() before starting epoch {epoch}")
        if not 0 <= epoch < self.policy.epochs:
            raise RunError(f"epoch must be in [0, {self.policy.epochs}), got {epoch}")
        if self.rank == 0 and read_manifest(self.run_dir, epoch) is None:
            with Ledger.open(self.ledger_path) as lg:
                if epoch > 0 and not lg.is_ingested(epoch - 1):
                    raise RunError(
                        f"cannot plan epoch {epoch}: epoch {epoch - 1} was not ingested (end_epoch() after each "
                        f"epoch; a restart continues at epoch {_first_missing(set(lg.ingested_epochs()))})"
                    )
                plan_epoch(lg, self.run_dir, epoch, self.policy, world_size=self.world_size, batch_size=batch_size)
        self._coord.barrier(f"manifest of epoch {epoch}")
        m = read_manifest(self.run_dir, epoch)
        if m is None:
            raise RunError(f"rank {self.rank}: epoch {epoch} has no manifest in {self.run_dir}")
        check_manifest(m, self._run.ledger_fingerprint, self.policy)
        return m

    def _begin(self, epoch: int, m: Manifest, batch_size: int | None) -> None:
        self.epoch = epoch
        self.manifest = m
        self.batch_size = batch_size
        self.steps_this_epoch = m.steps(self.world_size, batch_size) if batch_size else None
        per_rank = (self.steps_this_epoch * batch_size) if batch_size and self.steps_this_epoch else m.n_selected
        self._recorder = LossRecorder(per_rank, self.policy.ema_alpha)

    def my_shards(self) -> list[int]:
        """This rank's shards this epoch (indices into the manifest)."""
        if self.manifest is None:
            raise RunError("no epoch started: call loader() or stage() first")
        return self.manifest.assignment(self.world_size)[self.rank]

    def shard_urls(self, epoch: int | None = None) -> list[str]:
        """URLs of this rank's shards this epoch, for a pipeline of your own with :meth:`stage`."""
        m = self.manifest if epoch is None or epoch == self.epoch else read_manifest(self.run_dir, epoch)
        if m is None:
            raise RunError(f"epoch {epoch} has no manifest yet")
        return [shard_url(m, i, self.data_root) for i in m.assignment(self.world_size)[self.rank]]

    def loader(
        self,
        epoch: int,
        *,
        batch_size: int,
        num_workers: int = 0,
        decode: Decode = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        shuffle_buffer: int = 1000,
        **dataloader_kwargs: Any,
    ) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
        """The DataLoader of this rank's batches for ``epoch`` (``len()`` is :attr:`steps_this_epoch`).

        Plans the epoch if it has no manifest yet (rank 0). Batches are dicts;
        see :mod:`seta_stream.loader`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        m = self._manifest_for(epoch, batch_size)
        self._begin(epoch, m, batch_size)
        shards = self.my_shards()
        if self.steps_this_epoch and not any(m.shard_kept[i] for i in shards):
            raise RunError(
                f"rank {self.rank} has no shard with kept samples in epoch {epoch} "
                f"({sum(1 for k in m.shard_kept if k)} shards keep samples for {self.world_size} ranks): use more, "
                "smaller shards"
            )
        ds = EpochDataset(
            run_dir=self.run_dir,
            epoch=epoch,
            shards=shards,
            steps=self.steps_this_epoch or 0,
            batch_size=batch_size,
            rank=self.rank,
            seed=self.policy.seed,
            decode=decode,
            transform=transform,
            collate=collate,
            shuffle_buffer=shuffle_buffer,
            data_root=self.data_root,
            read_samples=self._sample_reader(),
        )
        return as_loader(ds, num_workers, **dataloader_kwargs)

    def _sample_reader(self) -> Callable[..., Any] | None:
        if self.reader == "webdataset":
            return None
        from .reader import FastReader

        return FastReader(self.run_dir, data_root=self.data_root, fallback=self.reader == "auto")

    def stage(self, epoch: int, batch_size: int | None = None) -> Any:
        """The prune stage for ``epoch``, for a webdataset pipeline of your own.

        Read this rank's shards (:meth:`shard_urls`; they are split among
        ranks already, so pass ``nodesplitter=None`` to ``wds.WebDataset``),
        put the stage right after the tar reader, and call :meth:`update` and
        :meth:`end_epoch` as with :meth:`loader`. With ``batch_size`` given, :attr:`steps_this_epoch`
        is the number of batches to run on every rank.
        """
        m = self._manifest_for(epoch, batch_size)
        self._begin(epoch, m, batch_size)
        return prune_stage(self.run_dir, epoch, root=self.data_root)

    def update(self, loss: torch.Tensor, batch: dict[str, Any] | None = None, *, ids: Any = None) -> torch.Tensor:
        """Record a batch's losses; return the loss to backpropagate.

        Args:
            loss: Per-sample losses (1-D, ``reduction="none"``), or a scalar
                batch loss (batch-loss scoring: every sample gets the running
                EMA of batch losses).
            batch: The batch from the loader (its ``__sample_id__`` and
                ``__weight__`` are used).
            ids: Sample ids, instead of ``batch``.

        Returns:
            The weighted mean of per-sample losses (weights are 1 except for
            InfoBatch's rescaled samples), or the scalar loss as given.

        Raises:
            RunError: no epoch started, the batch lacks ``__sample_id__``, or
                the loss and the batch differ in length.
        """
        if self._recorder is None:
            raise RunError("no epoch started: call pruner.loader(epoch, ...) or pruner.stage(epoch) first")
        if ids is None:
            if batch is None or "__sample_id__" not in batch:
                raise RunError(_MISSING_STAGE)
            ids = batch["__sample_id__"]
        ids_t = as_ids(ids)
        if loss.ndim == 0:
            self._recorder.record_batch_loss(ids_t, loss)
            return loss
        if loss.ndim != 1 or loss.shape[0] != ids_t.numel():
            raise RunError(
                f"loss has shape {tuple(loss.shape)} but the batch has {ids_t.numel()} samples "
                "(use reduction='none' for per-sample losses)"
            )
        self._recorder.record(ids_t, loss)
        if self.manifest is not None and self.manifest.uniform_weights:
            return loss.mean()
        weights = batch.get("__weight__") if batch is not None else None
        if weights is None:
            return loss.mean()
        w = torch.as_tensor(weights).to(device=loss.device, dtype=loss.dtype, non_blocking=True)
        return (loss * w).mean()

    def end_epoch(self) -> EpochReport:
        """Spool this rank's losses, ingest all ranks' (rank 0) and plan the next epoch.

        Raises:
            RunError: no epoch started, or a rank did not reach the end of the
                epoch within the barrier timeout.
        """
        if self.epoch is None or self._recorder is None or self.manifest is None:
            raise RunError("no epoch started: call pruner.loader(epoch, ...) first")
        epoch, m = self.epoch, self.manifest
        ids, losses, dropped = self._recorder.take()
        write_part(self.run_dir, epoch, self.rank, ids, losses, dropped)
        failpoint("after_spool", epoch, self.rank)
        self._coord.barrier(f"loss records of epoch {epoch}")
        steps = len(ids)
        if self.rank == 0:
            all_ids, all_losses, all_dropped = read_parts(self.run_dir, epoch, self.world_size)
            steps = len(all_ids)
            with Ledger.open(self.ledger_path) as lg:
                lg.ingest(epoch, all_ids, all_losses, ema_alpha=self.policy.ema_alpha, n_nonfinite=all_dropped)
                if epoch + 1 < self.policy.epochs:
                    plan_epoch(lg, self.run_dir, epoch + 1, self.policy, world_size=self.world_size,
                               batch_size=self.batch_size)  # fmt: skip
                self._write_progress(lg)
        self._coord.barrier(f"ingest of epoch {epoch}")
        self.epoch, self._recorder = None, None
        return EpochReport(epoch, m.n_selected, len(ids), dropped, steps, self.saved_fraction)
