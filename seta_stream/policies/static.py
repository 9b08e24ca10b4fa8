"""``static``: one uniform subset of int(r*N) samples, the same for the whole run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .common import Selection, base_stats, full_weights, uniform_subset

if TYPE_CHECKING:
    from ..config import PolicyConfig

_STATIC_STREAM = 0x57A71C


def static(
    scores: NDArray[np.float32], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig, rng: np.random.Generator
) -> Selection:
    """Select the run's fixed subset of int(r*N) samples.

    The epoch's generator is ignored: the subset is drawn from
    ``default_rng([seed, STATIC_STREAM])`` so that every epoch gets the same one.
    """
    n = len(scores)
    ids = uniform_subset(n, int(config.keep_ratio * n), np.random.default_rng([config.seed, _STATIC_STREAM]))
    return Selection(ids, full_weights(len(ids)), base_stats("prune", n, len(ids)))
