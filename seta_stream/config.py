"""Configuration: frozen, keyword-only dataclasses, loaded from YAML.

A config file holds the pruning policy's fields at the top level and an
optional ``train:`` section read by ``tools/train.py``::

    policy: seta          # seta | infobatch | random | static | full
    prune_ratio: 0.3      # fraction dropped by the random pruning step, in [0, 1)
    num_group: 5          # k-means groups
    window_scale: 0.9     # fraction of groups kept in the sliding window
    delta: 0.875          # fraction of epochs that prune; the rest anneal
    epochs: 30
    seed: 0
    train:
      batch_size: 128

Every bad value is a ``ValueError`` naming the field and its allowed range;
unknown keys are an error that names them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from .policies import POLICIES

POLICY_NAMES = tuple(POLICIES)
SCORE_MODES = ("last", "ema")
NEVER_SEEN = ("initial", "mean", "max")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """What to train on each epoch (see DESIGN section 5 for the exact semantics).

    Attributes:
        policy: ``seta``, ``infobatch``, ``random``, ``static`` or ``full``.
        prune_ratio: p; the keep ratio is ``1 - p`` clamped to [0.1, 1].
        num_group: k, the number of k-means groups (SeTa).
        window_scale: a; the window keeps ``round(k * a)`` groups (SeTa).
        delta: d; epochs with ``epoch + 1 <= d * epochs`` prune, later ones
            anneal (SeTa: random subsets; InfoBatch: full data).
        epochs: E, total epochs of the run.
        seed: Seeds every epoch's choice as ``default_rng([seed, epoch])``.
        score: ``last`` (latest per-sample loss) or ``ema`` (running average).
        ema_alpha: EMA weight of the old score: ``ema = a*old + (1-a)*loss``;
            also smooths batch-loss scoring.
        initial_score: Score of a sample never trained on (``never_seen: initial``).
        never_seen: How never-seen samples are scored: ``initial`` (the fixed
            ``initial_score``, as the reference code), ``mean`` or ``max`` of
            the seen samples' scores.
    """

    policy: str = "seta"
    prune_ratio: float = 0.3
    num_group: int = 5
    window_scale: float = 0.9
    delta: float = 0.875
    epochs: int = 10
    seed: int = 0
    score: str = "last"
    ema_alpha: float = 0.9
    initial_score: float = 3.0
    never_seen: str = "initial"

    def __post_init__(self) -> None:
        _check_type(self)
        if self.policy not in POLICY_NAMES:
            raise ValueError(f"policy must be one of {', '.join(POLICY_NAMES)}, got {self.policy!r}")
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        if self.num_group < 1:
            raise ValueError(f"num_group must be >= 1, got {self.num_group}")
        if not 0.0 < self.window_scale <= 1.0:
            raise ValueError(f"window_scale must be in (0, 1], got {self.window_scale}")
        if round(self.num_group * self.window_scale) < 1:
            raise ValueError(
                f"window_scale * num_group must round to at least 1 group, got "
                f"{self.window_scale} * {self.num_group} -> {round(self.num_group * self.window_scale)} groups"
            )
        if not 0.0 <= self.delta <= 1.0:
            raise ValueError(f"delta must be in [0, 1], got {self.delta}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.score not in SCORE_MODES:
            raise ValueError(f"score must be one of {', '.join(SCORE_MODES)}, got {self.score!r}")
        if not 0.0 <= self.ema_alpha < 1.0:
            raise ValueError(f"ema_alpha must be in [0, 1), got {self.ema_alpha}")
        if not (self.initial_score == self.initial_score and abs(self.initial_score) < float("inf")):
            raise ValueError(f"initial_score must be finite, got {self.initial_score}")
        if self.never_seen not in NEVER_SEEN:
            raise ValueError(f"never_seen must be one of {', '.join(NEVER_SEEN)}, got {self.never_seen!r}")

    @property
    def keep_ratio(self) -> float:
        """r = 1 - prune_ratio, clamped to [0.1, 1] as in the reference code."""
        return min(1.0, max(0.1, 1.0 - self.prune_ratio))

    @property
    def window(self) -> int:
        """Groups in the SeTa window: round(num_group * window_scale) (Python round), at least 1."""
        return max(1, round(self.num_group * self.window_scale))

    def prunes(self, epoch: int) -> bool:
        """True in the pruning phase: ``epoch + 1 <= delta * epochs`` (epochs count from 0)."""
        return epoch + 1 <= self.delta * self.epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training-loop settings read by ``tools/train.py``.

    Attributes:
        batch_size: Samples per step (per rank).
        lr: Peak learning rate.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        weight_decay: Weight decay.
        momentum: SGD momentum.
        num_workers: DataLoader workers per rank.
        eval_batch_size: Batch size for the test pass.
        width: Channels of the 1-D CNN.
        schedule: ``cosine`` (per step) or ``constant``.
    """

    batch_size: int = 128
    lr: float = 0.01
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    num_workers: int = 0
    eval_batch_size: int = 1024
    width: int = 32
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        _check_type(self)
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ValueError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.eval_batch_size < 1:
            raise ValueError(f"train.eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.width < 1:
            raise ValueError(f"train.width must be >= 1, got {self.width}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"train.schedule must be cosine or constant, got {self.schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole config file: the policy and the training-loop settings."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def replace(self, **policy_fields: Any) -> Config:
        """A copy with some policy fields changed (validated again)."""
        return Config(policy=dataclasses.replace(self.policy, **policy_fields), train=self.train)

    def to_dict(self) -> dict[str, Any]:
        return {**self.policy.to_dict(), "train": self.train.to_dict()}


def _check_type(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        want = {"int": int, "float": (int, float), "str": str}.get(str(f.type))
        if want is None:
            continue
        if isinstance(value, bool) or not isinstance(value, want):
            prefix = "train." if isinstance(obj, TrainConfig) else ""
            raise ValueError(f"{prefix}{f.name} must be {f.type}, got {value!r}")
        if str(f.type) == "float":
            object.__setattr__(obj, f.name, float(value))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(names))})")  # fmt: skip
    return cls(**data)


def config_from_dict(data: dict[str, Any], where: str = "") -> Config:
    """Build a Config from a dict shaped like the YAML file.

    Raises:
        ValueError: an unknown key or a bad value, naming the field.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}a config must be a mapping, got {type(data).__name__}")
    data = dict(data)
    train = data.pop("train", None) or {}
    if not isinstance(train, dict):
        raise ValueError(f"{where}train must be a mapping")
    try:
        return Config(
            policy=_build(PolicyConfig, data, ""),
            train=_build(TrainConfig, {k: v for k, v in train.items()}, "train: "),
        )
    except ValueError as e:
        raise ValueError(f"{where}{e}") from None
    except TypeError as e:  # pragma: no cover - _build checks keys first
        raise ValueError(f"{where}{e}") from None


def load_config(source: str | os.PathLike[str] | dict[str, Any] | Config | PolicyConfig) -> Config:
    """Load a config from a YAML file, a dict, or pass a Config through.

    Raises:
        ValueError: unreadable file, bad YAML, unknown keys or bad values; the
            message starts with the file name.
    """
    if isinstance(source, Config):
        return source
    if isinstance(source, PolicyConfig):
        return Config(policy=source)
    if isinstance(source, dict):
        return config_from_dict(source)
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    return config_from_dict(data or {}, where=f"{path}: ")
