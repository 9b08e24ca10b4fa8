"""``random``: a fresh uniform subset of int(r*N) samples every epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .common import Selection, base_stats, full_weights, uniform_subset

if TYPE_CHECKING:
    from ..config import PolicyConfig


def random_dynamic(
    scores: NDArray[np.float32], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig, rng: np.random.Generator
) -> Selection:
    """Select int(r*N) samples uniformly at random, drawn anew each epoch."""
    n = len(scores)
    ids = uniform_subset(n, int(config.keep_ratio * n), rng)
    return Selection(ids, full_weights(len(ids)), base_stats("prune", n, len(ids)))
