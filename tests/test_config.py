from __future__ import annotations

import pytest

from seta_stream.config import PolicyConfig, TrainConfig, load_config
from seta_stream.policies import POLICIES


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("prune_ratio", 1.0, r"prune_ratio must be in \[0, 1\), got 1.0"),
        ("prune_ratio", -0.1, r"prune_ratio must be in \[0, 1\)"),
        ("num_group", 0, r"num_group must be >= 1, got 0"),
        ("window_scale", 0.0, r"window_scale must be in \(0, 1\]"),
        ("window_scale", 1.5, r"window_scale must be in \(0, 1\]"),
        ("delta", 1.2, r"delta must be in \[0, 1\], got 1.2"),
        ("delta", -0.5, r"delta must be in \[0, 1\]"),
        ("epochs", 0, r"epochs must be >= 1"),
        ("policy", "nope", r"policy must be one of seta, infobatch, random, static, full, got 'nope'"),
        ("score", "median", r"score must be one of last, ema"),
        ("ema_alpha", 1.0, r"ema_alpha must be in \[0, 1\)"),
        ("never_seen", "zero", r"never_seen must be one of initial, mean, max"),
        ("initial_score", float("nan"), r"initial_score must be finite"),
        ("num_group", 2.5, r"num_group must be int"),
        ("prune_ratio", "0.3", r"prune_ratio must be float"),
    ],
)
def test_bad_values_name_the_field_and_range(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**{field: value})


def test_window_of_zero_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="must round to at least 1 group"):
        PolicyConfig(num_group=5, window_scale=0.05)
    with pytest.raises(ValueError, match="must round to at least 1 group"):
        PolicyConfig(num_group=5, window_scale=0.1)  # round(0.5) == 0

def test_keep_ratio_and_phases() -> None:
    cfg = PolicyConfig(prune_ratio=0.95, epochs=8, delta=0.875)
    assert cfg.keep_ratio == 0.1  # clamped as in the reference code
    assert [cfg.prunes(e) for e in range(8)] == [True] * 7 + [False]
    assert PolicyConfig(num_group=10, window_scale=0.5).window == 5
    assert PolicyConfig(num_group=5, window_scale=0.9).window == 4  # round(4.5) == 4: Python rounds half to even


def test_registry_and_config_agree() -> None:
    for name in POLICIES:
        PolicyConfig(policy=name)


def test_yaml_loading_and_unknown_keys(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("policy: infobatch\nprune_ratio: 0.5\nepochs: 4\ntrain:\n  batch_size: 32\n  lr: 0.001\n")
    cfg = load_config(str(p))
    assert cfg.policy.policy == "infobatch" and cfg.policy.prune_ratio == 0.5 and cfg.train.batch_size == 32
    p.write_text("policy: seta\nprune_rate: 0.5\nwindow: 3\n")
    with pytest.raises(ValueError, match=r"c.yaml: unknown keys prune_rate, window \(known: "):
        load_config(str(p))
    p.write_text("train:\n  batchsize: 3\n")
    with pytest.raises(ValueError, match=r"train: unknown key batchsize"):
        load_config(str(p))
    p.write_text("train:\n  batch_size: 0\n")
    with pytest.raises(ValueError, match=r"train.batch_size must be >= 1"):
        load_config(str(p))
    p.write_text("policy: [unclosed\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_config(str(p))
    with pytest.raises(ValueError, match="cannot read config"):
        load_config(str(tmp_path / "missing.yaml"))
    assert TrainConfig().batch_size == 128


def test_every_shipped_config_loads() -> None:
    import glob
    import os

    paths = glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml"))
    names = {os.path.basename(p) for p in paths}
    assert {"cifar100.yaml", "imagenet.yaml", "toca.yaml", "ss1m.yaml", "stmj.yaml", "mnist1d.yaml"} <= names
    for p in paths:
        text = open(p).read()
        assert text.lstrip().startswith("#"), f"{p} must say where its values come from"
        load_config(p)
