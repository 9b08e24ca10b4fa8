"""``infobatch``: prune well-learned samples at random and rescale the rest (Qin et al., ICLR 2024).

Threshold = mean of all current scores (never-seen samples included, at their
effective score). Of the n samples strictly below it, a uniform random int(r*n)
are kept with loss weight 1/r; samples at or above it are always kept with
weight 1. With all scores equal (epoch 0) nothing is below the mean, so the
epoch trains on everything. From the first epoch with ``epoch + 1 > delta *
epochs`` on: full data, all weights 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .common import Selection, base_stats, effective_scores, full_weights, strictly_below, uniform_subset

if TYPE_CHECKING:
    from ..config import PolicyConfig


def infobatch(
    scores: NDArray[np.float32], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig, rng: np.random.Generator
) -> Selection:
    n = len(scores)
    s = effective_scores(scores, seen, config)
    if not config.prunes(epoch):
        return Selection(np.arange(n, dtype=np.int64), full_weights(n), base_stats("anneal", n, n))
    r = config.keep_ratio
    threshold = float(np.mean(s, dtype=np.float64)) if n else 0.0
    below = strictly_below(s, threshold)
    below_ids = np.flatnonzero(below)
    chosen = below_ids[uniform_subset(len(below_ids), int(r * len(below_ids)), rng)]
    keep = ~below
    keep[chosen] = True
    ids = np.flatnonzero(keep).astype(np.int64)
    weights = np.where(below[ids], np.float32(1.0 / r), np.float32(1.0)).astype(np.float32)
    stats = base_stats("prune", n, len(ids))
    stats.update(threshold=threshold, below=int(len(below_ids)), below_kept=int(len(chosen)), weight=1.0 / r)
    return Selection(ids, weights, stats)
