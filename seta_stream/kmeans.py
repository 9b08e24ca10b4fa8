"""Exact one-dimensional k-means, fast enough for 100M scores.

In one dimension an optimal clustering is a set of contiguous intervals, so
k-means reduces to choosing k-1 thresholds. :func:`kmeans1d` does it in three
steps, none of which sorts the data:

1. **Histogram.** Values are binned into up to 65,536 equal-width bins in a
   robust ``asinh`` scale (linear near the median, logarithmic in the tails, so
   skewed and heavy-tailed losses keep resolution where the data is); per-bin
   counts and sums come from ``np.bincount``.
2. **Global optimum on the histogram.** The bins are merged into at most 512
   weighted points (cuts at count quantiles and at equal widths), and the
   globally optimal k-partition of those points is found by dynamic
   programming. This is the starting point; it sits in the basin of the global
   optimum of the full data for any distribution the bins resolve.
3. **Exact Lloyd.** Lloyd's algorithm on the real values, to convergence:
   thresholds are the midpoints of adjacent centres; the count and sum of
   values below a threshold are exact (prefix sums over whole bins, plus the
   few bins around the threshold extracted and sorted on demand). It stops
   when no value changes cluster, so the result is a fixed point of exact
   Lloyd: every value is in its nearest centre's cluster and every centre is
   its cluster's mean.

When fewer distinct values than clusters exist, or the data is small, the
dynamic program runs on the distinct values themselves, which is the exact
global optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_FINE_BINS = 1 << 16
_DP_POINTS = 4096
_EXACT_DP_LIMIT = 2048  # distinct values up to which the DP alone is exact
_MAX_ITER = 10_000
_CHUNK = 1 << 20
_MARGIN = 24  # bins fetched on each side of a threshold


@dataclass(frozen=True)
class Clusters:
    """A 1-D k-means result, groups sorted by centre (easy to hard).

    Attributes:
        centers: float64[k], ascending; NaN for a group left empty (only when
            there are fewer distinct values than groups; empty groups are last).
        bounds: float64[k-1]; group j holds the values v with
            ``bounds[j-1] < v <= bounds[j]`` (``+inf`` after the last non-empty group).
        sizes: int64[k], values per group.
        inertia: Sum of squared distances of values to their group's centre.
        iterations: Exact Lloyd iterations run.
    """

    centers: NDArray[np.float64]
    bounds: NDArray[np.float64]
    sizes: NDArray[np.int64]
    inertia: float
    iterations: int

    def assign(self, values: NDArray[np.floating]) -> NDArray[np.intp]:
        """Group index of each value."""
        return np.searchsorted(self.bounds, values, side="left")


def _dp_partition(w: NDArray[np.float64], m: NDArray[np.float64], k: int) -> list[int]:
    """Globally optimal partition of weighted sorted points into k contiguous runs.

    Dynamic programming over runs; each layer uses the divide-and-conquer
    optimisation (the k-means cost is Monge, so the best split point is
    monotone in the end point), vectorised level by level: O(k n log n).

    Args:
        w: Weights (counts), all > 0.
        m: Point positions, ascending.
        k: Number of runs, 1 <= k <= len(w).

    Returns:
        Start index of each run (first is 0), length k.
    """
    n = len(w)
    mc = m - np.average(m, weights=w)  # centred, for precision
    W = np.concatenate(([0.0], np.cumsum(w)))
    S = np.concatenate(([0.0], np.cumsum(w * mc)))
    Q = np.concatenate(([0.0], np.cumsum(w * mc * mc)))

    def cost(a: NDArray[np.intp], b: NDArray[np.intp]) -> NDArray[np.float64]:
        ds = S[b] - S[a]
        return (Q[b] - Q[a]) - ds * ds / (W[b] - W[a])

    ends = np.arange(n + 1)
    best = np.full(n + 1, np.inf)
    best[1:] = cost(np.zeros(n, dtype=np.intp), ends[1:])
    back = []
    for _ in range(1, k):
        best, arg = _dc_layer(best, cost, n)
        back.append(arg)
    starts = [0] * k
    end = n
    for j in range(k - 1, 0, -1):
        end = int(back[j - 1][end])
        starts[j] = end
    return starts


def _dc_layer(prev: NDArray[np.float64], cost, n: int) -> tuple[NDArray[np.float64], NDArray[np.intp]]:  # type: ignore[no-untyped-def]
    """new[b] = min over a < b of prev[a] + cost(a, b), for b in 1..n, and the argmin."""
    new = np.full(n + 1, np.inf)
    arg = np.zeros(n + 1, dtype=np.intp)
    b_lo, b_hi = np.array([1]), np.array([n])
    a_lo, a_hi = np.array([0]), np.array([n - 1])
    while len(b_lo):
        mid = (b_lo + b_hi) // 2
        hi = np.minimum(a_hi, mid - 1)
        lens = hi - a_lo + 1
        offs = np.concatenate(([0], np.cumsum(lens)[:-1]))
        total = int(lens.sum())
        task = np.repeat(np.arange(len(mid)), lens)
        pos = np.arange(total)
        a = a_lo[task] + (pos - offs[task])
        v = prev[a] + cost(a, mid[task])
        seg_min = np.minimum.reduceat(v, offs)
        first = np.minimum.reduceat(np.where(v == seg_min[task], pos, total), offs)
        opt = a[np.minimum(first, total - 1)]
        new[mid] = seg_min
        arg[mid] = opt
        left = mid > b_lo
        right = mid < b_hi
        b_lo, b_hi, a_lo, a_hi = (
            np.concatenate((b_lo[left], mid[right] + 1)),
            np.concatenate((mid[left] - 1, b_hi[right])),
            np.concatenate((a_lo[left], opt[right])),
            np.concatenate((opt[left], a_hi[right])),
        )
    return new, arg


def _robust_center_scale(v: NDArray[np.floating]) -> tuple[float, float]:
    step = max(1, len(v) // 65536)
    sample = np.sort(v[::step].astype(np.float64))
    q = np.quantile(sample, [0.1, 0.5, 0.9])
    scale = (q[2] - q[0]) / 4.0
    if not scale > 0:
        scale = float(np.mean(np.abs(sample - q[1])))
    if not scale > 0:
        scale = (float(sample[-1]) - float(sample[0])) / 1e3
    return float(q[1]), float(scale) if scale > 0 else 1.0


class _Binned:
    """Values binned in a robust asinh scale, with exact on-demand bin contents."""

    def __init__(self, v: NDArray[np.floating]) -> None:
        self.v = v
        n = len(v)
        self.nbins = min(_FINE_BINS, 1 << max(6, int(np.ceil(np.log2(max(n, 2))))))
        c, s = _robust_center_scale(v)
        self._c = np.float32(c)
        self._inv_s = np.float32(1.0 / s)
        lo = float(np.arcsinh((np.float32(v.min()) - self._c) * self._inv_s))
        hi = float(np.arcsinh((np.float32(v.max()) - self._c) * self._inv_s))
        self._y0 = np.float32(lo)
        self._k = np.float32((self.nbins - 1e-3) / (hi - lo)) if hi > lo else np.float32(0.0)
        # in chunks: bincount's float64 weights and the asinh scratch stay small
        self.bins = np.empty(n, dtype=np.int32)
        self.counts = np.zeros(self.nbins, dtype=np.int64)
        self.sums = np.zeros(self.nbins, dtype=np.float64)
        self.sumsq = 0.0
        for lo in range(0, n, _CHUNK):
            part = v[lo : lo + _CHUNK]
            b = self.bins[lo : lo + _CHUNK] = self.of(part)
            self.counts += np.bincount(b, minlength=self.nbins)
            self.sums += np.bincount(b, weights=part, minlength=self.nbins)
            p64 = part.astype(np.float64)
            self.sumsq += float(np.dot(p64, p64))
        self.cum_counts = np.concatenate(([0], np.cumsum(self.counts)))
        self.cum_sums = np.concatenate(([0.0], np.cumsum(self.sums)))
        self._cache: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
        self._means: NDArray[np.float64] | None = None

    def of(self, x: NDArray[np.floating]) -> NDArray[np.int32]:
        """Bin index of each value (monotone in the value, up to rounding)."""
        y = np.arcsinh((x.astype(np.float32, copy=False) - self._c) * self._inv_s)
        b = ((y - self._y0) * self._k).astype(np.int32)
        return np.clip(b, 0, self.nbins - 1, out=b)

    def _extract(self, wanted: list[int]) -> None:
        missing = [b for b in wanted if b not in self._cache and self.counts[b] > 0]
        for b in wanted:
            if self.counts[b] == 0:
                self._cache[b] = (np.zeros(0), np.zeros(1))
        if not missing:
            return
        lut = np.zeros(self.nbins, dtype=bool)
        lut[missing] = True
        sel = lut[self.bins]
        vals = self.v[sel].astype(np.float64)
        which = self.bins[sel]
        order = np.lexsort((vals, which))
        vals, which = vals[order], which[order]
        cuts = np.searchsorted(which, missing + [self.nbins])
        for i, b in enumerate(missing):
            seg = vals[cuts[i] : cuts[i + 1]]
            self._cache[b] = (seg, np.concatenate(([0.0], np.cumsum(seg))))

    def below_bin_means(self, t: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Count and sum of values whose bin's mean is <= each threshold (bins as points)."""
        if self._means is None:
            nz = np.flatnonzero(self.counts)
            self._means = self.sums[nz] / self.counts[nz]
            self._means_cc = np.concatenate(([0], np.cumsum(self.counts[nz])))
            self._means_cs = np.concatenate(([0.0], np.cumsum(self.sums[nz])))
        r = np.searchsorted(self._means, t, side="right")
        return self._means_cc[r], self._means_cs[r]

    def below(self, t: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Exact count and sum of values <= each threshold in ``t``."""
        b = self.of(t)
        lo = np.maximum(b - 1, 0)
        hi = np.minimum(b + 1, self.nbins - 1)
        if any(int(x) not in self._cache for pair in zip(lo, hi) for x in pair):
            # Exact Lloyd creeps a few bins at a time: fetch a margin around
            # each threshold so that one pass over the data serves many steps.
            self._extract(sorted({x for c in b for x in range(max(int(c) - _MARGIN, 0),
                                                              min(int(c) + _MARGIN, self.nbins - 1) + 1)}))  # fmt: skip
        counts = np.empty(len(t), dtype=np.int64)
        sums = np.empty(len(t), dtype=np.float64)
        for i in range(len(t)):
            c = int(self.cum_counts[lo[i]])
            s = float(self.cum_sums[lo[i]])
            for j in range(int(lo[i]), int(hi[i]) + 1):
                seg, pre = self._cache[j]
                r = int(np.searchsorted(seg, t[i], side="right"))
                c += r
                s += float(pre[r])
            # bins above hi hold only values > t (monotone binning, one bin of slack)
            counts[i], sums[i] = c, s
        return counts, sums

    def compressed(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """At most _DP_POINTS weighted points (weight, mean) and the fine-bin cut after each."""
        nz = np.flatnonzero(self.counts)
        cc = np.cumsum(self.counts[nz])
        n = cc[-1]
        half = _DP_POINTS // 2
        by_count = np.searchsorted(cc, np.arange(1, half) * (n / half), side="left")
        by_width = np.searchsorted(nz, np.arange(1, half) * (self.nbins / half), side="left") - 1
        cuts = np.unique(np.concatenate((by_count, by_width, [len(nz) - 1])))
        cuts = cuts[(cuts >= 0) & (cuts < len(nz))]
        ends = nz[cuts] + 1  # fine-bin end (exclusive) of each point
        starts = np.concatenate(([0], ends[:-1]))
        w = (self.cum_counts[ends] - self.cum_counts[starts]).astype(np.float64)
        keep = w > 0
        s = self.cum_sums[ends] - self.cum_sums[starts]
        return w[keep], s[keep] / w[keep], ends[keep]


def _finish(
    k: int, centers: NDArray[np.float64], sizes: NDArray[np.int64], sumsq: float, sums: NDArray[np.float64],
    iterations: int
) -> Clusters:  # fmt: skip
    kk = len(centers)
    full_centers = np.full(k, np.nan)
    full_centers[:kk] = centers
    full_sizes = np.zeros(k, dtype=np.int64)
    full_sizes[:kk] = sizes
    bounds = np.full(k - 1, np.inf)
    bounds[: kk - 1] = (centers[:-1] + centers[1:]) / 2.0
    nz = sizes > 0
    inertia = float(sumsq - np.sum(sums[nz] ** 2 / sizes[nz]))
    return Clusters(full_centers, bounds, full_sizes, max(inertia, 0.0), iterations)


def _exact_small(v: NDArray[np.floating], k: int) -> Clusters:
    u, cnt = np.unique(v.astype(np.float64), return_counts=True)
    kk = min(k, len(u))
    starts = _dp_partition(cnt.astype(np.float64), u, kk) if kk > 1 else [0]
    edges = starts + [len(u)]
    sizes = np.array([cnt[a:b].sum() for a, b in zip(edges[:-1], edges[1:])], dtype=np.int64)
    sums = np.array([(u[a:b] * cnt[a:b]).sum() for a, b in zip(edges[:-1], edges[1:])])
    centers = sums / sizes
    sumsq = float(np.dot(u * u, cnt))
    return _finish(k, centers, sizes, sumsq, sums, 0)


def kmeans1d(values: NDArray[np.floating], k: int) -> Clusters:
    """Cluster values into k groups, sorted by centre.

    Args:
        values: 1-D finite values (float32 or float64), any order.
        k: Number of groups, >= 1.

    Returns:
        The clustering: a fixed point of exact Lloyd started from the
        histogram's global optimum (the exact global optimum when the data has
        at most 2,048 distinct values).

    Raises:
        ValueError: k < 1, empty input, or non-finite values.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    v = np.asarray(values)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("values must be a non-empty 1-D array")
    if v.dtype not in (np.float32, np.float64):
        v = v.astype(np.float64)
    if not np.isfinite(v.min()) or not np.isfinite(v.max()):
        raise ValueError("values must be finite (no NaN or inf)")
    if len(v) <= _EXACT_DP_LIMIT or k == 1 or v.min() == v.max():
        return _exact_small(v, k)
    binned = _Binned(v)
    w, means, ends = binned.compressed()
    if len(w) < k:
        u = np.unique(v)
        if len(u) <= _EXACT_DP_LIMIT:
            return _exact_small(v, k)
        k_eff = len(w)
    else:
        k_eff = k
    starts = _dp_partition(w, means, k_eff)
    # initial clusters: the DP's runs of points, with exact sums from the bins
    run_end = [ends[s - 1] if s > 0 else 0 for s in starts[1:]] + [binned.nbins]
    run_start = [0] + run_end[:-1]
    cnt = binned.cum_counts[run_end] - binned.cum_counts[run_start]
    tot = binned.cum_sums[run_end] - binned.cum_sums[run_start]
    centers = tot / cnt
    n, total = len(v), float(binned.cum_sums[-1])
    # Lloyd on the bins' means first (cheap, no pass over the data), then on
    # the exact values, which from there takes few iterations.
    centers, _, _, it_a = _lloyd(centers, binned.below_bin_means, n, total)
    centers, sizes, sums, it_b = _lloyd(centers, binned.below, n, total)
    return _finish(k, centers, sizes, binned.sumsq, sums, it_a + it_b)


def _lloyd(
    centers: NDArray[np.float64], below, n: int, total: float  # type: ignore[no-untyped-def]
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], int]:
    """Lloyd iterations until no point changes cluster.

    ``below(t)`` gives the count and sum of points <= each threshold. Returns
    (centers, sizes, sums, iterations); the centres are the means of the
    final assignment, which is the nearest-centre assignment for them.
    """
    prev = None
    it = 0
    for it in range(1, _MAX_ITER + 1):
        c_le, s_le = below((centers[:-1] + centers[1:]) / 2.0)
        sizes = np.diff(np.concatenate(([0], c_le, [n])))
        sums = np.diff(np.concatenate(([0.0], s_le, [total])))
        if prev is not None and np.array_equal(c_le, prev):
            break
        prev = c_le
        nz = sizes > 0
        new = centers.copy()
        new[nz] = sums[nz] / sizes[nz]
        centers = np.maximum.accumulate(new)  # keep the order under rounding
    return centers, sizes, sums, it
