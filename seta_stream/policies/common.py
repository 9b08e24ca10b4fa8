"""What every policy shares: the Selection it returns, uniform subsets, scoring of unseen samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ..config import PolicyConfig

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Selection:
    """One epoch's choice.

    Attributes:
        ids: Selected sample ids, int64, sorted ascending, unique.
        weights: float32 loss weight per selected id (1 unless the policy
            rescales, as InfoBatch does).
        stats: JSON-ready facts about the choice: ``phase`` (``prune``,
            ``anneal`` or ``full``), ``n_samples``, ``kept``, and per policy the
            groups (size, bounds, centre), the window, the threshold.
    """

    ids: NDArray[np.int64]
    weights: NDArray[np.float32]
    stats: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    def __call__(
        self,
        scores: NDArray[np.float32],
        seen: NDArray[np.bool_],
        epoch: int,
        config: PolicyConfig,
        rng: np.random.Generator,
    ) -> Selection: ...


def uniform_subset(n: int, m: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """A uniformly random subset of exactly ``m`` of ``range(n)``, sorted.

    Each index is first kept with probability m/n, then the surplus or deficit
    is fixed by a uniform choice among the kept (or the dropped) indices. The
    procedure treats all indices alike, so every m-subset is equally likely;
    it costs O(n) with no sort.
    """
    if m >= n:
        return np.arange(n, dtype=np.int64)
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    p = np.float32(m / n)
    mask = np.empty(n, dtype=bool)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        np.less(rng.random(hi - lo, dtype=np.float32), p, out=mask[lo:hi])
    have = int(np.count_nonzero(mask))
    if have > m:
        kept = np.flatnonzero(mask)
        mask[kept[rng.choice(have, have - m, replace=False)]] = False
    elif have < m:
        dropped = np.flatnonzero(~mask)
        mask[dropped[rng.choice(n - have, m - have, replace=False)]] = True
    return np.flatnonzero(mask).astype(np.int64, copy=False)


def effective_scores(
    scores: NDArray[np.floating], seen: NDArray[np.bool_], config: PolicyConfig
) -> NDArray[np.float32]:
    """Scores with never-seen samples filled in per ``config.never_seen``.

    Returns the input itself (as float32) when every sample was seen; callers
    must not modify the result.

    ``initial`` uses ``config.initial_score`` (the reference code's 3.0),
    ``mean``/``max`` the mean/max of the seen samples (``initial_score`` while
    nothing is seen).

    Raises:
        ValueError: a seen sample's score is NaN or infinite, or the arrays
            differ in length.
    """
    scores = np.asarray(scores)
    seen = np.asarray(seen, dtype=bool)
    if scores.shape != seen.shape or scores.ndim != 1:
        raise ValueError(f"scores and seen must be 1-D arrays of one length, got {scores.shape} and {seen.shape}")
    out = scores.astype(np.float32, copy=False)
    n_seen = int(np.count_nonzero(seen))
    if n_seen:
        bad = seen & ~np.isfinite(out) if n_seen < len(out) else ~np.isfinite(out)
        if bad.any():
            ids = np.flatnonzero(bad)
            raise ValueError(
                f"scores must be finite: {len(ids)} seen sample(s) have NaN or inf scores "
                f"(sample ids {', '.join(map(str, ids[:5]))}{', ...' if len(ids) > 5 else ''})"
            )
    if n_seen == len(out):
        return out  # nothing to fill: no copy (callers only read)
    out = out.copy()
    fill = config.initial_score
    if n_seen and config.never_seen == "mean":
        fill = float(np.mean(out[seen], dtype=np.float64))
    elif n_seen and config.never_seen == "max":
        fill = float(np.max(out[seen]))
    out[~seen] = fill
    return out


def full_weights(n: int) -> NDArray[np.float32]:
    return np.ones(n, dtype=np.float32)


def base_stats(phase: str, n: int, kept: int) -> dict[str, Any]:
    return {"phase": phase, "n_samples": int(n), "kept": int(kept)}


def strictly_below(values: NDArray[np.float32], threshold: float) -> NDArray[np.bool_]:
    """``values < threshold`` for float32 values and a float64 threshold, exactly,
    without a float64 copy of the values."""
    t32 = np.float32(threshold)
    return values <= t32 if float(t32) < threshold else values < t32
