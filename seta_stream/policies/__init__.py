"""Pruning policies, by name.

Each policy is a pure function ``policy(scores, seen, epoch, config, rng) ->
Selection``: no paths, no clocks, no I/O; the same inputs give the same
selection. ``scores`` holds every sample's current score (anything for
samples never seen; see ``config.never_seen``), ``seen`` marks samples trained
on at least once, ``rng`` is ``numpy.random.default_rng([seed, epoch])``.
"""

from __future__ import annotations

from .common import Policy, Selection, effective_scores, uniform_subset
from .full import full
from .infobatch import infobatch
from .random import random_dynamic
from .seta import seta, window_of
from .static import static

POLICIES: dict[str, Policy] = {
    "seta": seta,
    "infobatch": infobatch,
    "random": random_dynamic,
    "static": static,
    "full": full,
}


def get_policy(name: str) -> Policy:
    """The policy registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registry's names).
    """
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None


__all__ = ["POLICIES", "Policy", "Selection", "effective_scores", "get_policy", "uniform_subset", "window_of"]
