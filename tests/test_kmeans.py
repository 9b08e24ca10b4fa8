from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans

from seta_stream.kmeans import kmeans1d


def _dists(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "gamma": rng.gamma(2.0, 1.0, n),
        "bimodal": np.concatenate([rng.normal(0.3, 0.1, 3 * n // 5), rng.normal(3.0, 0.5, n - 3 * n // 5)]),
        "heavy_tailed": rng.pareto(1.5, n),
        "lognormal": rng.lognormal(0.0, 2.0, n),
        "many_ties": np.round(rng.gamma(2.0, 1.0, n), 1),
        "ties_and_spread": np.concatenate([np.full(n // 2, 3.0), rng.exponential(1.0, n - n // 2)]),
    }


def _sklearn(x: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, n_init=10, tol=0, random_state=0).fit(x.astype(np.float64)[:, None])
    c = np.sort(km.cluster_centers_.ravel())
    return float(km.inertia_), (c[:-1] + c[1:]) / 2


def _inertia(x: np.ndarray, bounds: np.ndarray) -> float:
    g = np.searchsorted(bounds, x, side="left")
    x = x.astype(np.float64)
    return float(sum(((x[g == j] - x[g == j].mean()) ** 2).sum() for j in np.unique(g)))


@pytest.mark.parametrize("name", list(_dists(10, 0)))
@pytest.mark.parametrize("k", [3, 5, 10])
def test_inertia_no_worse_than_sklearn(name: str, k: int) -> None:
    x = _dists(12000, 1)[name].astype(np.float32)
    ours = kmeans1d(x, k)
    ref, ref_bounds = _sklearn(x, k)
    assert abs(ours.inertia - _inertia(x, ours.bounds)) <= 1e-6 * max(ref, 1e-12)
    assert ours.inertia <= ref * (1 + 1e-4) + 1e-9
    if abs(ours.inertia - ref) <= 1e-7 * ref:  # both reached the same optimum
        finite = np.isfinite(ours.bounds)
        np.testing.assert_allclose(ours.bounds[finite], ref_bounds[finite], rtol=1e-3)


def test_large_input_is_an_exact_lloyd_fixed_point() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.gamma(2.0, 0.5, 300_000), rng.lognormal(1.0, 1.0, 100_000)]).astype(np.float32)
    for k in (5, 10):
        c = kmeans1d(x, k)
        g = c.assign(x)
        x64 = x.astype(np.float64)
        means = np.array([x64[g == j].mean() for j in range(k)])
        np.testing.assert_allclose(c.centers, means, rtol=1e-9)  # centres are their groups' means
        nearest = np.argmin(np.abs(x64[:, None] - c.centers[None, :]), axis=1)
        tie = np.isclose(np.abs(x64 - c.centers[g]), np.abs(x64 - c.centers[nearest]), rtol=0, atol=1e-9)
        assert np.all((nearest == g) | tie)  # every value is in its nearest centre's group
        assert np.all(np.diff(c.centers) > 0) and c.sizes.sum() == len(x)
        assert list(np.bincount(g, minlength=k)) == list(c.sizes)


def test_all_equal_and_fewer_points_than_groups() -> None:
    c = kmeans1d(np.full(1000, 3.0, np.float32), 5)
    assert c.inertia == 0 and c.sizes[0] == 1000 and c.sizes[1:].sum() == 0
    c = kmeans1d(np.array([5.0, 1.0, 3.0], np.float32), 5)
    assert c.inertia == 0
    assert list(c.sizes) == [1, 1, 1, 0, 0]
    assert list(c.assign(np.array([1.0, 3.0, 5.0]))) == [0, 1, 2]
    assert list(c.centers[:3]) == [1.0, 3.0, 5.0] and np.isnan(c.centers[3:]).all()
    c = kmeans1d(np.repeat(np.array([0.0, 1.0, 2.0], np.float32), 5000), 7)  # many ties, few distinct
    assert c.inertia == 0 and list(c.sizes[:3]) == [5000] * 3


def test_small_inputs_are_the_global_optimum() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = rng.gamma(1.5, 1.0, int(rng.integers(8, 40))).astype(np.float64)
        k = int(rng.integers(2, 5))
        c = kmeans1d(x, k)
        xs = np.sort(x)
        best = np.inf
        import itertools

        for cut in itertools.combinations(range(1, len(xs)), k - 1):
            parts = np.split(xs, cut)
            best = min(best, sum(((p - p.mean()) ** 2).sum() for p in parts))
        assert c.inertia == pytest.approx(best, rel=1e-9, abs=1e-12)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        kmeans1d(np.ones(3), 0)
    with pytest.raises(ValueError, match="non-empty"):
        kmeans1d(np.zeros(0), 2)
    with pytest.raises(ValueError, match="finite"):
        kmeans1d(np.array([1.0, np.nan, 2.0]), 2)
