"""Planning: pure functions from scores to an epoch's selection and its layout.

Nothing here reads or writes files: :mod:`seta_stream.manifest` takes scores
from the ledger, calls :func:`plan`, and writes the result.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .config import PolicyConfig
from .policies import Selection, get_policy


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's choice: ``default_rng([seed, epoch])``."""
    return np.random.default_rng([seed, epoch])


def plan(scores: NDArray[np.floating], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig) -> Selection:
    """Choose epoch ``epoch``'s samples.

    Deterministic: a pure function of (scores, seen, epoch, config).

    Args:
        scores: Current score of every sample, by sample id (NaN allowed where
            ``seen`` is False).
        seen: True for samples trained on at least once.
        epoch: 0-based epoch.
        config: The policy and its parameters.

    Returns:
        Sorted int64 ids, float32 weights, and stats.

    Raises:
        ValueError: unknown policy, epoch out of range, NaN/inf scores.
    """
    if not 0 <= epoch < config.epochs:
        raise ValueError(f"epoch must be in [0, {config.epochs}) for a run of {config.epochs} epochs, got {epoch}")
    return get_policy(config.policy)(scores, seen, epoch, config, epoch_rng(config.seed, epoch))


def assign_shards(kept_per_shard: Sequence[int] | NDArray[np.int64], world_size: int) -> list[list[int]]:
    """Assign shards to ranks, balancing kept samples (longest-processing-time greedy).

    Shards are taken by kept count, largest first (ties by index), each to the
    rank with the fewest kept samples so far (ties by rank). Shards with no
    kept sample are not assigned: nobody reads them. Each rank's shards are
    returned in ascending order. Deterministic.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    kept = np.asarray(kept_per_shard, dtype=np.int64)
    order = np.lexsort((np.arange(len(kept)), -kept))
    heap = [(0, r) for r in range(world_size)]
    out: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        if kept[i] <= 0:
            break
        load, r = heapq.heappop(heap)
        out[r].append(int(i))
        heapq.heappush(heap, (load + int(kept[i]), r))
    return [sorted(x) for x in out]


def steps_per_rank(total_kept: int, world_size: int, batch_size: int) -> int:
    """Batches every rank yields in an epoch: ceil(kept / (world_size * batch_size)).

    Every batch is full; ranks whose shards hold fewer samples repeat some of
    them, ranks holding more leave a few out (see ``split_quota``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return -(-int(total_kept) // (world_size * batch_size))


def split_quota(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder).

    Parts are 0 where the weight is 0; ties go to the earlier index. Deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(w)
    exact = total * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    rest = int(total - base.sum())
    order = np.lexsort((np.arange(len(w)), -(exact - base)))
    base[order[:rest]] += 1
    return [int(x) for x in base]


def saved_fraction(sample_steps: int, n_samples: int, epochs: int) -> float:
    """1 - (sample-steps run) / (N * E)."""
    return 1.0 - sample_steps / float(n_samples * epochs) if n_samples and epochs else 0.0


def split_batches(steps: int, kept: Sequence[int], batch_size: int) -> list[int]:
    """Split a rank's ``steps`` batches among its DataLoader workers.

    Each worker first gets the batches that hold its kept samples
    (``ceil(kept/batch_size)``); spare batches (when the rank must repeat
    samples to match the other ranks) go to the workers with the most kept
    samples. When the ceilings add up to more than ``steps``, every worker
    gets ``floor(kept/batch_size)`` and the rest go to the largest remainders,
    so at most one partial batch's worth of samples is left out; when even the
    floors exceed ``steps`` (a rank holding more than its share), the batches
    are split in proportion to the kept samples. A worker with no kept sample
    gets no batch. Always sums to ``steps``. Deterministic.
    """
    k = np.asarray(kept, dtype=np.int64)
    if steps <= 0 or k.sum() <= 0:
        return [0] * len(k)
    need = -(-k // batch_size)
    if need.sum() <= steps:
        return [int(x) for x in need + np.asarray(split_quota(int(steps - need.sum()), k))]
    base = k // batch_size
    rest = int(steps - base.sum())
    if rest < 0:
        return split_quota(steps, k)
    order = np.lexsort((np.arange(len(k)), -(k % batch_size)))
    base[order[:rest]] += 1
    return [int(x) for x in base]
