"""Ranks and barriers for runs under ``torch.distributed`` (torchrun).

Only epoch boundaries synchronise: all ranks spool their losses, then rank 0
ingests and plans while the others wait. Those waits are barriers with a
timeout on a gloo process group (created beside an NCCL one if need be), so a
rank that died makes the others fail with an error naming the missing rank,
instead of hanging forever.
"""

from __future__ import annotations

import datetime as dt

import torch.distributed as dist

from .errors import RunError


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torch.distributed, or (0, 1) when not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Coordinator:
    """Barriers with a timeout between the ranks of a run.

    Args:
        rank: This process's rank.
        world_size: Number of ranks; with 1, barriers do nothing.
        timeout: Seconds a barrier waits for the slowest rank.
    """

    def __init__(self, rank: int, world_size: int, timeout: float = 1800.0) -> None:
        self.rank = rank
        self.world_size = world_size
        self.timeout = timeout
        self._group = None
        if world_size > 1:
            if not (dist.is_available() and dist.is_initialized()):
                raise RunError(
                    f"world_size {world_size} needs torch.distributed to be initialised (torchrun and "
                    "init_process_group) before the Pruner is made"
                )
            # monitored_barrier needs gloo: reuse the default group if it is gloo, else make one
            if dist.get_backend() == "gloo":
                self._group = dist.group.WORLD
            else:
                self._group = dist.new_group(backend="gloo", timeout=dt.timedelta(seconds=timeout))

    def barrier(self, what: str) -> None:
        """Wait until every rank reaches the same point.

        Raises:
            RunError: a rank did not arrive within the timeout (it died or hung),
                naming what the ranks were waiting for.
        """
        if self.world_size <= 1:
            return
        try:
            dist.monitored_barrier(
                group=self._group, timeout=dt.timedelta(seconds=self.timeout), wait_all_ranks=True
            )
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunError(
                f"rank {self.rank}: waiting for all {self.world_size} ranks at '{what}' failed after at most "
                f"{self.timeout:g} s (a rank died or is stuck): {first}"
            ) from None
