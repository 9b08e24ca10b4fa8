"""``full``: every sample, every epoch (the no-pruning reference)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .common import Selection, base_stats, full_weights

if TYPE_CHECKING:
    from ..config import PolicyConfig


def full(
    scores: NDArray[np.float32], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig, rng: np.random.Generator
) -> Selection:
    """Select all samples with weight 1."""
    n = len(scores)
    return Selection(np.arange(n, dtype=np.int64), full_weights(n), base_stats("full", n, n))
