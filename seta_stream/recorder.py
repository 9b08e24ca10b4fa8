"""The loss recorder: per-sample losses from the training loop, buffered until the epoch ends.

Records go into preallocated buffers (sample ids as int64, losses as float32)
sized for the epoch; nothing is written per step and nothing synchronises
with the GPU: losses stay on their device until :meth:`LossRecorder.take` at
the epoch's end. Non-finite losses are dropped there, counted, and warned about
once per epoch.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from .errors import RunError


def as_ids(ids: Any) -> torch.Tensor:
    """Sample ids as an int64 tensor (from a tensor, a numpy array or a list), never via a float."""
    if isinstance(ids, torch.Tensor):
        if ids.dtype not in (torch.int64, torch.int32):
            raise RunError(f"__sample_id__ must be an integer tensor, got {ids.dtype}")
        return ids.reshape(-1).to(torch.int64)
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise RunError(f"__sample_id__ must be integers, got dtype {arr.dtype}")
    return torch.from_numpy(arr.astype(np.int64, copy=False).reshape(-1))


class LossRecorder:
    """Collects (sample id, loss) pairs for one epoch.

    Args:
        capacity: Records expected this epoch (buffers grow if exceeded).
        ema_alpha: Smoothing of batch-loss scoring: each sample of a batch gets
            ``m = a*m + (1-a)*batch_loss``.
    """

    def __init__(self, capacity: int, ema_alpha: float = 0.9) -> None:
        self._capacity = max(int(capacity), 1)
        self._alpha = float(ema_alpha)
        self._ids: torch.Tensor | None = None
        self._losses: torch.Tensor | None = None
        self._n = 0
        self._batch_ema: torch.Tensor | None = None

    def __len__(self) -> int:
        return self._n

    def _ensure(self, n: int, ids_device: torch.device, loss_device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Buffers with room for ``n`` more records (allocated on first use, doubled when full)."""
        need = self._n + n
        if self._ids is None or self._losses is None:
            cap = max(self._capacity, need)
            self._ids = torch.empty(cap, dtype=torch.int64, device=ids_device)
            self._losses = torch.empty(cap, dtype=torch.float32, device=loss_device)
        elif need > len(self._ids):
            cap = max(need, 2 * len(self._ids))
            ids, losses = self._ids, self._losses
            self._ids = torch.empty(cap, dtype=torch.int64, device=ids.device)
            self._losses = torch.empty(cap, dtype=torch.float32, device=losses.device)
            self._ids[: self._n] = ids[: self._n]
            self._losses[: self._n] = losses[: self._n]
        return self._ids, self._losses

    def record(self, ids: Any, losses: torch.Tensor) -> None:
        """Record per-sample losses (a 1-D tensor, same length as ``ids``)."""
        ids_t = as_ids(ids)
        loss = losses.detach().reshape(-1)
        n = ids_t.numel()
        if loss.numel() != n:
            raise RunError(f"loss has {loss.numel()} values but the batch has {n} samples")
        id_buf, loss_buf = self._ensure(n, ids_t.device, loss.device)
        id_buf[self._n : self._n + n].copy_(ids_t, non_blocking=True)
        loss_buf[self._n : self._n + n].copy_(loss, non_blocking=True)
        self._n += n

    def record_batch_loss(self, ids: Any, batch_loss: torch.Tensor) -> None:
        """Batch-loss scoring: every sample of the batch gets the running EMA of batch losses."""
        ids_t = as_ids(ids)
        value = batch_loss.detach().reshape(()).to(torch.float32)
        if self._batch_ema is None:
            self._batch_ema = value.clone()
        else:
            self._batch_ema = self._alpha * self._batch_ema + (1.0 - self._alpha) * value
        self.record(ids_t, self._batch_ema.expand(ids_t.numel()))

    def take(self) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
        """The epoch's records, emptied: (ids, losses, number of non-finite losses dropped)."""
        if self._ids is None or self._losses is None or self._n == 0:
            self._n = 0
            return np.zeros(0, np.int64), np.zeros(0, np.float32), 0
        ids = self._ids[: self._n].cpu().numpy().copy()
        losses = self._losses[: self._n].cpu().numpy().copy()
        self._n = 0
        finite = np.isfinite(losses)
        dropped = int(len(losses) - np.count_nonzero(finite))
        if dropped:
            bad = ids[~finite]
            warnings.warn(
                f"{dropped} non-finite loss(es) were not recorded this epoch "
                f"(sample ids {', '.join(map(str, bad[:5]))}{', ...' if len(bad) > 5 else ''})",
                RuntimeWarning,
                stacklevel=2,
            )
            ids, losses = ids[finite], losses[finite]
        return ids, losses, dropped
