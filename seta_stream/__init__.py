"""seta-stream: dynamic sample pruning (SeTa, InfoBatch) for WebDataset shards.

The parts, in data-flow order:

* :func:`build_ledger` indexes tar shards into a :class:`Ledger` (DuckDB);
* :func:`plan` (pure) and :func:`plan_epoch` choose an epoch's samples and
  write its :class:`Manifest`;
* :func:`prune_stage` drops unselected samples in a webdataset pipeline;
* :class:`Pruner` ties it together for a training loop: ``loader(epoch)``,
  ``update(loss, batch)``, ``end_epoch()``.
"""

from .builder import build_ledger
from .config import Config, PolicyConfig, TrainConfig, load_config
from .errors import LedgerError, ManifestError, RunError, SetaStreamError, ShardError
from .forecast import forecast
from .kmeans import kmeans1d
from .ledger import Ledger
from .manifest import Manifest, plan_epoch, read_manifest
from .planner import plan
from .policies import POLICIES
from .pruner import EpochReport, Pruner
from .stage import prune_stage

__version__ = "0.1.0"

__all__ = [
    "POLICIES",
    "Config",
    "EpochReport",
    "Ledger",
    "LedgerError",
    "Manifest",
    "ManifestError",
    "PolicyConfig",
    "Pruner",
    "RunError",
    "SetaStreamError",
    "ShardError",
    "TrainConfig",
    "build_ledger",
    "forecast",
    "kmeans1d",
    "load_config",
    "plan",
    "plan_epoch",
    "prune_stage",
    "read_manifest",
]
