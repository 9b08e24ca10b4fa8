"""``seta``: Scale Efficient Training (Zhou, Gao, Wang, CVPR 2025).

Per epoch e, with keep ratio r, k groups, window scale a, delta d, E epochs:

1. While ``e + 1 <= d*E`` (pruning; t = e counts pruning epochs from 0):

   a. draw a uniform random subset of int(r*N) samples;
   b. cluster the subset's scores with exact 1-D k-means into k groups sorted
      by centre, easy to hard (all scores equal: k equal chunks in id order);
   c. keep the window of w = round(k*a) groups starting at t mod (k - w + 1);
      at t = 0 keep all k groups.

2. After that (annealing): a uniform random subset of int(r*N) samples.

An epoch never comes out empty: if the window holds no sample, one random
sample of the subset is kept (as the reference code does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..kmeans import kmeans1d
from .common import Selection, base_stats, effective_scores, full_weights, uniform_subset

if TYPE_CHECKING:
    from ..config import PolicyConfig


def window_of(t: int, k: int, w: int) -> tuple[int, int]:
    """Groups [start, end) kept at pruning epoch t: all at t = 0, else a window of w sliding easy to hard."""
    if t == 0:
        return 0, k
    start = t % (k - w + 1)
    return start, start + w


def seta(
    scores: NDArray[np.float32], seen: NDArray[np.bool_], epoch: int, config: PolicyConfig, rng: np.random.Generator
) -> Selection:
    n = len(scores)
    m = int(config.keep_ratio * n)
    if not config.prunes(epoch):
        ids = uniform_subset(n, m, rng)
        return Selection(ids, full_weights(len(ids)), base_stats("anneal", n, len(ids)))
    s = effective_scores(scores, seen, config)
    sub = uniform_subset(n, m, rng)
    k = config.num_group
    start, end = window_of(epoch, k, config.window)
    stats = base_stats("prune", n, 0)
    stats.update(random_kept=int(len(sub)), window=[start, end], num_group=k)
    if len(sub) == 0:
        stats["groups"] = []
        return Selection(sub, full_weights(0), stats)
    vals = s[sub]
    lo_v, hi_v = float(vals.min()), float(vals.max())
    if lo_v == hi_v:
        # all scores equal: k equal chunks of the subset, in id order
        cuts = (np.arange(k + 1) * len(sub)) // k
        ids = sub[cuts[start] : cuts[end]]
        sizes = np.diff(cuts)
        groups = [_group(int(sizes[j]), lo_v, hi_v, lo_v) for j in range(k)]
    else:
        cl = kmeans1d(vals, k)
        lo = cl.bounds[start - 1] if start > 0 else -np.inf
        hi = cl.bounds[end - 1] if end < k else np.inf
        keep = vals > lo
        keep &= vals <= hi
        ids = sub[keep]
        edges = np.concatenate(([lo_v], np.minimum(np.maximum(cl.bounds, lo_v), hi_v), [hi_v]))
        groups = [
            _group(int(cl.sizes[j]), float(edges[j]), float(edges[j + 1]), float(cl.centers[j]))
            for j in range(k)
        ]
        stats["inertia"] = cl.inertia
    if len(ids) == 0:
        ids = sub[[int(rng.integers(len(sub)))]]
        stats["empty_window"] = True
    stats["groups"] = groups
    stats["kept"] = int(len(ids))
    return Selection(ids.astype(np.int64, copy=False), full_weights(len(ids)), stats)


def _group(size: int, lo: float, hi: float, center: float) -> dict[str, Any]:
    return {"size": size, "lo": lo, "hi": hi, "center": None if center != center else center}
