from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seta_stream.config import PolicyConfig
from seta_stream.planner import assign_shards, plan, split_quota, steps_per_rank
from seta_stream.policies import POLICIES, uniform_subset, window_of

SETTINGS = settings(max_examples=40, derandomize=True, deadline=None)


def _scores(n: int, seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "equal":
        return np.full(n, 3.0, np.float32)
    if kind == "ties":
        return rng.integers(0, 4, n).astype(np.float32)
    return rng.gamma(2.0, 1.0, n).astype(np.float32)


configs = st.fixed_dictionaries(
    dict(
        policy=st.sampled_from(list(POLICIES)),
        prune_ratio=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.95]),
        num_group=st.sampled_from([1, 2, 5, 10]),
        window_scale=st.sampled_from([0.5, 0.6, 0.9, 1.0]),
        delta=st.sampled_from([0.0, 0.5, 0.875, 1.0]),
        epochs=st.integers(1, 12),
        seed=st.integers(0, 3),
    )
).filter(lambda d: round(d["num_group"] * d["window_scale"]) >= 1).map(lambda d: PolicyConfig(**d))


@SETTINGS
@given(cfg=configs, n=st.integers(1, 3000), seed=st.integers(0, 5), kind=st.sampled_from(["gamma", "ties", "equal"]),
       data=st.data())  # fmt: skip
def test_selection_invariants(cfg: PolicyConfig, n: int, seed: int, kind: str, data: st.DataObject) -> None:
    epoch = data.draw(st.integers(0, cfg.epochs - 1))
    scores = _scores(n, seed, kind)
    seen = np.random.default_rng(seed).random(n) < 0.8
    sel = plan(scores, seen, epoch, cfg)
    # ids: sorted, unique, int64, a subset of all ids; weights float32 and positive
    assert sel.ids.dtype == np.int64 and sel.weights.dtype == np.float32
    assert len(sel.ids) == len(sel.weights) == sel.stats["kept"]
    assert np.all(np.diff(sel.ids) > 0) and (len(sel.ids) == 0 or (sel.ids[0] >= 0 and sel.ids[-1] < n))
    assert np.all(sel.weights > 0)
    # deterministic
    again = plan(scores.copy(), seen.copy(), epoch, cfg)
    assert np.array_equal(sel.ids, again.ids) and np.array_equal(sel.weights, again.weights)
    # kept count follows the policy's arithmetic
    r = cfg.keep_ratio
    m = int(r * n)
    kept = len(sel.ids)
    if cfg.policy == "full":
        assert kept == n
    elif cfg.policy in ("random", "static"):
        assert kept == m
    elif cfg.policy == "seta":
        if not cfg.prunes(epoch):
            assert kept == m and sel.stats["phase"] == "anneal"
        elif epoch == 0 or m == 0:
            assert kept == m
        else:
            a, b = sel.stats["window"]
            in_window = sum(g["size"] for g in sel.stats["groups"][a:b])
            assert kept == max(in_window, 1)
            assert sum(g["size"] for g in sel.stats["groups"]) == m
    elif cfg.policy == "infobatch":
        if not cfg.prunes(epoch):
            assert kept == n and np.all(sel.weights == 1)
        else:
            below = sel.stats["below"]
            assert kept == n - below + int(r * below)


@pytest.mark.parametrize("k,a,w", [(5, 0.9, 4), (10, 0.5, 5), (5, 0.6, 3)])
def test_seta_window_sequence_follows_the_formula(k: int, a: float, w: int) -> None:
    cfg = PolicyConfig(policy="seta", prune_ratio=0.1, num_group=k, window_scale=a, delta=0.875, epochs=16)
    assert cfg.window == w == round(k * a)
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, 1.0, 5000).astype(np.float32)
    seen = np.ones(5000, bool)
    got = []
    for e in range(16):
        sel = plan(scores, seen, e, cfg)
        if e + 1 <= 0.875 * 16:
            got.append(tuple(sel.stats["window"]))
            a0, b0 = sel.stats["window"]
            # the kept samples are exactly those in the window's groups
            g = sel.stats["groups"]
            lo = g[a0]["lo"]
            hi = g[b0 - 1]["hi"]
            kept_scores = scores[sel.ids]
            assert kept_scores.min() >= lo and kept_scores.max() <= hi
        else:
            assert sel.stats["phase"] == "anneal" and len(sel.ids) == int(0.9 * 5000)
    s = k - w
    expected = [(0, k)] + [(t % (s + 1), t % (s + 1) + w) for t in range(1, 14)]
    assert got == expected
    assert [window_of(t, k, w) for t in range(14)] == expected


def test_seta_windows_slide_easy_to_hard() -> None:
    cfg = PolicyConfig(policy="seta", prune_ratio=0.0, num_group=5, window_scale=0.6, epochs=10, delta=1.0)
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(1, 0.05, 1000), rng.normal(2, 0.05, 1000), rng.normal(3, 0.05, 1000),
                             rng.normal(4, 0.05, 1000), rng.normal(5, 0.05, 1000)]).astype(np.float32)  # fmt: skip
    seen = np.ones(len(scores), bool)
    # w = 3 of 5 groups; start = t mod 3: epoch 3 -> groups 0-2, epoch 1 -> 1-3, epoch 2 -> 2-4
    means = [float(scores[plan(scores, seen, e, cfg).ids].mean()) for e in (3, 1, 2)]
    assert means == pytest.approx([2.0, 3.0, 4.0], abs=0.01)
    assert plan(scores, seen, 3, cfg).stats["window"] == [0, 3]


def test_infobatch_weights_are_exactly_one_over_keep_ratio() -> None:
    rng = np.random.default_rng(2)
    n = 10000
    scores = rng.gamma(2.0, 1.0, n).astype(np.float32)
    seen = np.ones(n, bool)
    for p in (0.3, 0.5, 0.7):
        cfg = PolicyConfig(policy="infobatch", prune_ratio=p, epochs=10)
        sel = plan(scores, seen, 2, cfg)
        thr = float(np.mean(scores, dtype=np.float64))
        below = scores[sel.ids].astype(np.float64) < thr
        assert np.all(sel.weights[below] == np.float32(1.0 / (1.0 - p)))
        assert np.all(sel.weights[~below] == 1.0)
        assert np.count_nonzero(~below) == np.count_nonzero(scores.astype(np.float64) >= thr)
        assert np.count_nonzero(below) == int((1 - p) * np.count_nonzero(scores.astype(np.float64) < thr))
    # epoch 0: all scores equal, nothing is below the mean: everything, weight 1
    sel = plan(np.full(n, 3.0, np.float32), np.zeros(n, bool), 0, PolicyConfig(policy="infobatch", prune_ratio=0.5))
    assert len(sel.ids) == n and np.all(sel.weights == 1)


def test_never_seen_policies() -> None:
    scores = np.array([1.0, 2.0, np.nan, 5.0, np.nan], np.float32)
    seen = np.array([True, True, False, True, False])
    from seta_stream.policies import effective_scores

    assert list(effective_scores(scores, seen, PolicyConfig())) == [1, 2, 3, 5, 3]
    assert list(effective_scores(scores, seen, PolicyConfig(never_seen="mean"))) == [1, 2, 8 / 3, 5, 8 / 3]
    assert list(effective_scores(scores, seen, PolicyConfig(never_seen="max"))) == [1, 2, 5, 5, 5]
    assert list(effective_scores(scores, seen, PolicyConfig(initial_score=0.5))) == [1, 2, 0.5, 5, 0.5]


@pytest.mark.parametrize("policy", ["seta", "infobatch"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_scores_are_rejected(policy: str, bad: float) -> None:
    scores = np.ones(100, np.float32)
    scores[[7, 42]] = bad
    with pytest.raises(ValueError, match=r"scores must be finite: 2 seen sample\(s\) have NaN or inf scores "
                                         r"\(sample ids 7, 42\)"):  # fmt: skip
        plan(scores, np.ones(100, bool), 1, PolicyConfig(policy=policy, epochs=4))


def test_static_is_the_same_subset_every_epoch_and_random_is_not() -> None:
    n = 1000
    scores, seen = np.ones(n, np.float32), np.ones(n, bool)
    st_cfg = PolicyConfig(policy="static", prune_ratio=0.5, epochs=5)
    rd_cfg = PolicyConfig(policy="random", prune_ratio=0.5, epochs=5)
    static = [plan(scores, seen, e, st_cfg).ids for e in range(5)]
    rand = [plan(scores, seen, e, rd_cfg).ids for e in range(5)]
    assert all(np.array_equal(static[0], s) for s in static)
    assert not np.array_equal(rand[0], rand[1])
    assert not np.array_equal(plan(scores, seen, 0, PolicyConfig(policy="random", seed=1, epochs=5)).ids, rand[0])


def test_uniform_subset_is_uniform() -> None:
    counts = np.zeros(20)
    for s in range(4000):
        counts[uniform_subset(20, 7, np.random.default_rng([9, s]))] += 1
    assert counts.sum() == 4000 * 7
    # each index kept with probability 7/20: 1400 expected, sd ~30
    assert np.all(np.abs(counts - 1400) < 150)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(steps=st.integers(0, 50), kept=st.lists(st.integers(0, 300), min_size=1, max_size=6), batch=st.integers(1, 32))
def test_split_batches_always_sums_to_steps(steps: int, kept: list[int], batch: int) -> None:
    from seta_stream.planner import split_batches

    out = split_batches(steps, kept, batch)
    assert len(out) == len(kept) and all(b >= 0 for b in out)
    assert sum(out) == (steps if sum(kept) else 0)
    assert all(b == 0 for b, k in zip(out, kept) if k == 0)
    if sum(-(-k // batch) for k in kept) <= steps:  # room for everything: nothing left out
        assert all(b * batch >= k for b, k in zip(out, kept))


def test_shard_assignment_and_steps() -> None:
    kept = [50, 10, 0, 40, 30, 30, 0, 5]
    a = assign_shards(kept, 3)
    assert sorted(i for r in a for i in r) == [0, 1, 3, 4, 5, 7]  # empty shards are nobody's
    loads = [sum(kept[i] for i in r) for r in a]
    assert max(loads) - min(loads) <= max(kept)
    assert a == assign_shards(kept, 3)
    assert steps_per_rank(1000, 3, 64) == 6
    assert steps_per_rank(3 * 2**31, 2, 1) == 3 * 2**30  # int64 arithmetic, no overflow
    assert split_quota(10, [3, 0, 3, 1]) == [4, 0, 4, 2] or sum(split_quota(10, [3, 0, 3, 1])) == 10
    assert split_quota(7, [0, 0]) == [0, 0]
    assert split_quota(5, [1, 1, 1]) == [2, 2, 1]
