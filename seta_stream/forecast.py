"""Forecast a pruning schedule before spending GPU time.

Runs the real policy epoch after epoch on simulated losses and reports the
samples kept each epoch and the total saved fraction. Scores start from a
ledger's current scores, or from a synthetic loss distribution (per-sample
difficulty ~ Gamma(2, 1), starting at the policy's initial score). After each
epoch the trained samples' losses fall: each sample learns at its own rate,
and harder samples learn more slowly, so the distribution shifts downward and
spreads over epochs, as training losses do. The savings a schedule gives depend
mostly on group sizes, which this captures well enough to choose
``prune_ratio`` and ``window_scale`` for a target saving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .config import PolicyConfig
from .planner import plan, saved_fraction

_FORECAST_STREAM = 0xF0CA57


@dataclass(frozen=True)
class EpochForecast:
    epoch: int
    phase: str
    kept: int
    mean_loss: float


@dataclass(frozen=True)
class Forecast:
    n_samples: int
    epochs: list[EpochForecast]

    @property
    def sample_steps(self) -> int:
        return sum(e.kept for e in self.epochs)

    @property
    def saved_fraction(self) -> float:
        return saved_fraction(self.sample_steps, self.n_samples, len(self.epochs))


def forecast(
    config: PolicyConfig,
    n_samples: int,
    scores: NDArray[np.float32] | None = None,
    seen: NDArray[np.bool_] | None = None,
    start_epoch: int = 0,
) -> Forecast:
    """Simulate epochs ``start_epoch .. config.epochs - 1``.

    Args:
        config: The policy to simulate.
        n_samples: Dataset size (ignored when ``scores`` is given).
        scores: Starting scores by sample id (a ledger's); None for synthetic.
        seen: Which of ``scores`` were seen; None means all of them.
        start_epoch: First epoch to simulate (a run already under way).

    Returns:
        Per-epoch kept counts and the whole run's saved fraction (epochs before
        ``start_epoch`` counted as full).
    """
    rng = np.random.default_rng([config.seed, _FORECAST_STREAM])
    if scores is None:
        n = int(n_samples)
        if n < 1:
            raise ValueError(f"samples must be >= 1, got {n_samples}")
        difficulty = rng.gamma(2.0, 1.0, n).astype(np.float32)
        cur = np.full(n, config.initial_score, dtype=np.float32)
        seen_arr = np.zeros(n, dtype=bool)
    else:
        n = len(scores)
        cur = np.asarray(scores, dtype=np.float32).copy()
        seen_arr = np.ones(n, dtype=bool) if seen is None else np.asarray(seen, dtype=bool).copy()
        base = cur[seen_arr] if seen_arr.any() else np.full(1, config.initial_score, np.float32)
        difficulty = np.where(seen_arr, cur, float(np.mean(base))).astype(np.float32)
        difficulty = np.maximum(difficulty, 1e-3)
    rate = (0.35 / np.sqrt(difficulty)).astype(np.float32)  # hard samples learn slowly
    progress = np.zeros(n, dtype=np.float32)
    out = [EpochForecast(e, "full", n, float("nan")) for e in range(start_epoch)]
    for e in range(start_epoch, config.epochs):
        sel = plan(cur, seen_arr, e, config)
        ids = sel.ids
        progress[ids] += rate[ids]
        noise = rng.lognormal(0.0, 0.25, len(ids)).astype(np.float32)
        cur[ids] = difficulty[ids] * np.exp(-progress[ids]) * noise
        seen_arr[ids] = True
        out.append(EpochForecast(e, str(sel.stats.get("phase")), len(ids), float(np.mean(cur[seen_arr]))))
    return Forecast(n, out)
