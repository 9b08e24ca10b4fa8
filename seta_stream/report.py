"""Figures of one training run (``seta-stream report RUN_DIR``).

The ``load_*``, ``score_history`` and ``*noise*`` functions read a run directory
(manifests, loss parts, metrics.jsonl, the ledger) into arrays; the ``plot_*``
functions draw them, one PNG each; :func:`write_report` does both. The scores
the planner saw before each epoch are rebuilt from the loss parts as the ledger
merged them (each sample's last record of an epoch, as ``loss`` or ``ema``, and
never-seen samples filled per ``never_seen``). matplotlib is imported only to
draw, on an Agg canvas without pyplot, so ``import seta_stream`` never needs it.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from .config import PolicyConfig
from .errors import SetaStreamError
from .ledger import Ledger, last_per_id, query_arrow
from .manifest import epoch_dir, read_manifest
from .policies.common import effective_scores
from .run import RunInfo, read_run
from .spool import read_parts

CAPTIONS = {
    "kept_per_epoch.png": "samples kept per epoch, by phase, and the cumulative fraction of sample-steps saved",
    "loss_histograms.png": "the scores the planner saw before each epoch, its k-means groups and the kept window",
    "group_transitions.png": "how samples move between k-means groups from one pruning epoch to the next",
    "label_noise.png": "where the mislabeled samples sit: their losses, and their share of each epoch's selection",
    "test_accuracy.png": "test accuracy, train and test loss per epoch",
}
PHASE_COLORS = {"prune": "#1f77b4", "anneal": "#ff7f0e", "full": "#7f7f7f"}
MAX_PANELS, MAX_PAIRS, HIST_SAMPLE = 30, 7, 200_000


@dataclass(frozen=True)
class EpochPlan:
    """One planned epoch, from its manifest summary."""

    epoch: int
    phase: str
    n_samples: int
    n_selected: int
    stats: dict[str, Any]

    @property
    def groups(self) -> list[dict[str, Any]]:
        """The k-means groups (easy to hard) when they split the scores, else []."""
        g = self.stats.get("groups") or []
        return g if len(g) > 1 and g[0]["lo"] < g[-1]["hi"] else []

    def group_of(self, scores: NDArray[np.float32]) -> NDArray[np.int64]:
        """Each score's group by the planner's rule (a group's upper bound is inclusive)."""
        return np.searchsorted([g["hi"] for g in self.groups[:-1]], scores, side="left").astype(np.int64)


@dataclass
class RunData:
    run_dir: str
    info: RunInfo
    plans: list[EpochPlan]
    metrics: list[dict[str, Any]]

    @property
    def n_samples(self) -> int:
        return max(p.n_samples for p in self.plans)


@dataclass
class ScoreHistory:
    """Planner scores before each epoch (of up to HIST_SAMPLE samples) and group transition counts."""

    scores: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    unseen: dict[int, NDArray[np.bool_]] = field(default_factory=dict)
    transitions: dict[tuple[int, int], NDArray[np.int64]] = field(default_factory=dict)


def load_run(run_dir: str) -> RunData:
    """The run's binding, planned epochs and metrics; SetaStreamError if it is not a run or has no manifests."""
    info = read_run(run_dir)
    if info is None:
        raise SetaStreamError(f"{run_dir} is not a run directory (no run.json)")
    plans = []
    for d in sorted(glob.glob(os.path.join(run_dir, "manifests", "epoch=*"))):
        m = read_manifest(run_dir, int(d.rsplit("=", 1)[1]))
        if m is not None:
            st = m.summary["stats"]
            plans.append(EpochPlan(m.epoch, st.get("phase", "?"), m.n_samples, m.n_selected, st))
    if not plans:
        raise SetaStreamError(f"run {run_dir} has no planned epochs (no manifests)")
    return RunData(run_dir, info, plans, load_metrics(run_dir))


def load_metrics(run_dir: str) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl`` in epoch order (an epoch's last row wins); [] without the file."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = {int(r["epoch"]): r for r in map(json.loads, filter(str.strip, f))}
    return [rows[e] for e in sorted(rows)]


def load_losses(run_dir: str, epoch: int) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
    """Every (sample id, loss) recorded in ``epoch`` on all ranks; None if nothing was recorded."""
    world = len(glob.glob(os.path.join(run_dir, "losses", f"epoch={epoch:06d}", "rank=*.parquet")))
    return read_parts(run_dir, epoch, world)[:2] if world else None


def saved_fraction(data: RunData) -> list[float]:
    """Cumulative saved fraction per planned epoch (metrics.jsonl's where it has one)."""
    logged = {r["epoch"]: r["saved_fraction"] for r in data.metrics if r.get("saved_fraction") is not None}
    computed = 1.0 - np.cumsum([p.n_selected for p in data.plans]) / np.cumsum([p.n_samples for p in data.plans])
    return [float(logged.get(p.epoch, c)) for p, c in zip(data.plans, computed)]


def score_history(data: RunData) -> ScoreHistory:
    """Replay the loss parts: the planner's scores before each planned epoch, and the group transitions."""
    try:
        cfg = PolicyConfig(**data.info.config)
    except TypeError as e:
        raise SetaStreamError(f"run {data.run_dir}: run.json has a config this seta-stream cannot read ({e})") from None
    n = data.n_samples
    loss, ema, seen = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32), np.zeros(n, bool)
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(n, HIST_SAMPLE, replace=False)) if n > HIST_SAMPLE else np.arange(n)
    out, prev = ScoreHistory(), None
    for p in data.plans:
        s = effective_scores(ema if cfg.score == "ema" else loss, seen, cfg)
        out.scores[p.epoch], out.unseen[p.epoch] = s[subset].copy(), ~seen[subset]
        groups = p.group_of(s) if p.groups else None
        if prev is not None and groups is not None and prev[0].epoch + 1 == p.epoch:
            ke, kf = len(prev[0].groups), len(p.groups)
            counts = np.bincount(prev[1] * kf + groups, minlength=ke * kf)
            out.transitions[(prev[0].epoch, p.epoch)] = counts.reshape(ke, kf)
        prev = (p, groups) if groups is not None else None
        rec = load_losses(data.run_dir, p.epoch)
        if rec is not None and len(rec[0]):
            uniq, last = last_per_id(rec[0], n)
            new = rec[1][last]
            ema[uniq] = np.where(seen[uniq], cfg.ema_alpha * ema[uniq] + (1 - cfg.ema_alpha) * new, new)
            loss[uniq], seen[uniq] = new, True
    return out


def _local(url: str) -> str:
    return os.path.abspath(url[len("file://") :] if url.startswith("file://") else url)


def _noise_file(data_dir: str) -> str:
    return os.path.join(data_dir, "label_noise.parquet")


def noise_mask(ledger: Ledger, data_dir: str | None) -> NDArray[np.bool_] | None:
    """Per sample id, True where DATA/label_noise.parquet records a flipped label; None without that file.

    ``data_dir`` None looks next to the shards (DATA/train/x.tar, or DATA/x.tar). The file's shard
    names are matched to the ledger's names, or to the shard paths relative to DATA.
    """
    urls = ledger.con.execute("SELECT name, url FROM shards ORDER BY shard_id").fetchall()
    if data_dir is None and urls:
        d = os.path.dirname(_local(urls[0][1]))
        data_dir = next((c for c in (os.path.dirname(d), d) if os.path.exists(_noise_file(c))), None)
    if data_dir is None or not os.path.exists(_noise_file(data_dir)):
        return None
    noise = pq.read_table(_noise_file(data_dir), columns=["shard", "key", "clean_label", "label"])
    alias = {os.path.relpath(_local(url), os.path.abspath(data_dir)): name for name, url in urls}
    alias.update({name: name for name, _ in urls})
    names = [alias.get(s, s) for s in noise.column("shard").to_pylist()]
    flip = pc.not_equal(noise.column("label"), noise.column("clean_label"))
    flipped = pa.table({"shard": names, "key": noise.column("key"), "flip": flip})
    ledger.con.register("_noise", flipped)
    try:
        ids = query_arrow(ledger.con, "SELECT s.sample_id FROM samples s JOIN shards sh USING (shard_id) "
                          "JOIN _noise n ON n.shard = sh.name AND n.key = s.key WHERE n.flip")  # fmt: skip
    finally:
        ledger.con.unregister("_noise")
    mask = np.zeros(ledger.num_samples(), dtype=bool)
    mask[ids.column(0).to_numpy()] = True
    return mask


def label_noise(
    data: RunData, ledger: str | None, data_dir: str | None
) -> tuple[NDArray[np.bool_], NDArray[np.float32]] | None:
    """(mislabeled mask, last recorded loss) per sample id; None without a ledger or recorded label noise.

    ``ledger`` None means RUN_DIR/ledger.duckdb if it exists, else the ledger in run.json.

    Raises:
        SetaStreamError: ``ledger`` is not the run's, or ``data_dir`` has no label_noise.parquet.
    """
    if data_dir is not None and not os.path.exists(_noise_file(data_dir)):
        raise SetaStreamError(f"no label_noise.parquet in {data_dir}")
    if ledger is None:
        found = [p for p in (os.path.join(data.run_dir, "ledger.duckdb"), data.info.ledger_path) if os.path.exists(p)]
        if not found:
            return None
        ledger = found[0]
    with Ledger.open(ledger, read_only=True) as lg:
        if lg.fingerprint() != data.info.ledger_fingerprint:
            raise SetaStreamError(f"ledger {ledger} is not the ledger of run {data.run_dir} (another fingerprint)")
        noisy = noise_mask(lg, data_dir)
        return (noisy, lg.read_scores("loss")[0]) if noisy is not None and noisy.any() else None


def noise_by_epoch(data: RunData, noisy: NDArray[np.bool_]) -> dict[str, list[float]]:
    """Per planned epoch: the mislabeled share of its manifest, and the mean loss recorded of clean/mislabeled."""
    out: dict[str, list[float]] = {"epoch": [], "kept_share": [], "clean_loss": [], "noisy_loss": []}
    for p in data.plans:
        ids = pq.read_table(os.path.join(epoch_dir(data.run_dir, p.epoch), "manifest.parquet"), columns=["sample_id"])
        ids = ids.column(0).to_numpy()
        rec = load_losses(data.run_dir, p.epoch) or (np.zeros(0, np.int64), np.zeros(0, np.float32))
        bad = noisy[rec[0]]
        out["epoch"].append(p.epoch)
        out["kept_share"].append(float(noisy[ids].mean()) if len(ids) else np.nan)
        out["clean_loss"].append(float(rec[1][~bad].mean()) if (~bad).any() else np.nan)
        out["noisy_loss"].append(float(rec[1][bad].mean()) if bad.any() else np.nan)
    return out


# -- drawing ------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SetaStreamError("seta-stream report needs matplotlib: pip install 'seta-stream[report]'") from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(n: int, max_cols: int, w: float, h: float, extra: tuple[float, float], **kw: Any) -> tuple[Any, Any, int]:
    """A figure of ``n`` panels, ``w`` x ``h`` inches each, in rows of ``max_cols``: (fig, axes, ncol)."""
    ncol = min(max_cols, n)
    nrow = -(-n // ncol)
    fig = _figure(max(w * ncol + extra[0], 9.0), h * nrow + extra[1])
    axes = fig.subplots(nrow, ncol, squeeze=False, **kw).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes, ncol


def _bottom(axes: Any, n: int, ncol: int) -> list[Any]:
    """The panels of a grid with no panel below them."""
    return [ax for i, ax in enumerate(axes[:n]) if i + ncol >= n]


def _title(data: RunData, what: str) -> str:
    name = os.path.basename(os.path.abspath(data.run_dir))
    return f"{what} — {name} ({data.info.config['policy']}, {data.n_samples:,} samples)"


def _epoch_axis(ax: Any, data: RunData, shade: bool = True) -> None:
    """Integer epoch ticks, the legend below, and epochs that do not prune shaded in their phase's colour."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    for p in data.plans if shade else []:
        if p.phase != "prune":
            ax.axvspan(p.epoch - 0.5, p.epoch + 0.5, color=PHASE_COLORS.get(p.phase, "#eeeeee"), alpha=0.1, lw=0)


def _evenly(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` items, evenly spaced, the first and last included."""
    if len(items) <= limit:
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))]


def plot_kept(data: RunData, path: str) -> None:
    from matplotlib.patches import Patch

    fig = _figure(9, 4.6)
    ax = fig.add_subplot()
    epochs = [p.epoch for p in data.plans]
    ax.bar(epochs, [p.n_selected / max(p.n_samples, 1) for p in data.plans], width=0.8,
           color=[PHASE_COLORS.get(p.phase, "#2ca02c") for p in data.plans])  # fmt: skip
    handles: list[Any] = [Patch(color=PHASE_COLORS.get(ph, "#2ca02c"), label=f"kept ({ph} phase)")
                          for ph in dict.fromkeys(p.phase for p in data.plans)]  # fmt: skip
    ax.set(ylabel="fraction of samples kept", ylim=(0, 1.05), title=_title(data, "Samples kept per epoch"))
    saved = saved_fraction(data)
    ax2 = ax.twinx()
    handles += ax2.plot(epochs, saved, "k-o", ms=3, label=f"cumulative sample-steps saved (final {saved[-1]:.1%})")
    ax2.set(ylabel="cumulative saved fraction", ylim=(0, 1.05))
    for a in (ax, ax2):
        a.yaxis.set_major_formatter("{x:.0%}")
    _epoch_axis(ax, data, shade=False)
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.savefig(path)


def _score_range(scores: NDArray[np.float32], initial: float) -> tuple[float, float]:
    """Histogram x range: the 0.1st to 99.9th percentile, widened to hold 0 and the initial score."""
    lo, hi = (float(x) for x in np.percentile(scores, [0.1, 99.9]))
    lo, hi = min(lo, initial, 0.0), max(hi, initial)
    return lo, hi + 0.03 * (hi - lo) + 1e-9


def plot_loss_histograms(data: RunData, hist: ScoreHistory, path: str) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plans = _evenly(data.plans, MAX_PANELS)
    fig, axes, ncol = _grid(len(plans), 5, 3.1, 2.3, (0, 0.6), sharex=True)
    cfg = data.info.config
    x0, x1 = _score_range(np.concatenate([hist.scores[p.epoch] for p in plans]), cfg["initial_score"])
    for ax, p in zip(axes, plans):
        s, unseen = np.clip(hist.scores[p.epoch], x0, x1), hist.unseen[p.epoch]
        ax.hist([s[~unseen], s[unseen]], bins=np.linspace(x0, x1, 61), stacked=True, color=["#1f77b4", "#bbbbbb"])
        note = f"epoch {p.epoch}, {p.phase}\nkept {p.n_selected / max(p.n_samples, 1):.0%}"
        if p.groups:
            a, b = p.stats["window"]
            ax.axvspan(max(p.groups[a]["lo"], x0), min(p.groups[b - 1]["hi"], x1), color="#2ca02c", alpha=0.18, lw=0)
            for hi in [g["hi"] for g in p.groups[:-1] if g["hi"] < x1]:
                ax.axvline(hi, color="#d62728", lw=0.8, ls="--")
            note += f", window g{a}–g{b - 1}"
        elif "threshold" in p.stats:
            ax.axvline(p.stats["threshold"], color="#d62728", lw=1)
            note += f"\n{p.stats['below_kept']:,} of {p.stats['below']:,} below the line kept"
        else:
            note += "\nall scores equal" if p.stats.get("groups") else "\nscores not used"
        ax.text(0.97, 0.95, note, transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
                bbox=dict(fc="white", ec="none", alpha=0.75))  # fmt: skip
        ax.tick_params(labelsize=7)
        ax.set(xlim=(x0, x1), yscale="log", ylim=(0.7, None))
    for ax in _bottom(axes, len(plans), ncol):
        ax.set_xlabel("score (loss)", fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[::ncol]:
        ax.set_ylabel("samples (log scale)", fontsize=8)
    handles = [Patch(color="#1f77b4", label="seen (last loss)" if cfg["score"] == "last" else "seen (EMA of losses)"),
               Patch(color="#bbbbbb", label="never seen (initial score)")]  # fmt: skip
    if any(p.groups for p in plans):
        handles += [Patch(color="#2ca02c", alpha=0.3, label="kept window"),
                    Line2D([], [], color="#d62728", ls="--", lw=0.8, label="k-means group bound")]  # fmt: skip
    if any("threshold" in p.stats for p in plans):
        handles.append(Line2D([], [], color="#d62728", lw=1, label="threshold (mean score)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(_title(data, "Scores seen by the planner before each epoch"))
    fig.savefig(path)


def _heatmap(ax: Any, counts: NDArray[np.int64], title: str, window: list[int] | None) -> Any:
    rows = counts.sum(axis=1)
    frac = np.divide(counts, rows[:, None], out=np.full(counts.shape, np.nan), where=rows[:, None] > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(frac):
        if v >= 0.005:
            ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7, color="white" if v > 0.55 else "black")
    mark = [" ◀" if window and window[0] <= i < window[1] else "" for i in range(len(rows))]
    size = [f"{r / 1e6:.1f}M" if r >= 1e6 else f"{r / 1e3:.1f}k" if r >= 1e3 else str(r) for r in rows]
    ax.set_yticks(range(len(rows)), [f"g{i}{mark[i]}\n{size[i]}" for i in range(len(rows))], fontsize=7)
    ax.set_xticks(range(counts.shape[1]), [f"g{j}" for j in range(counts.shape[1])], fontsize=8)
    ax.set_title(title, fontsize=9)
    return im


def plot_transitions(data: RunData, hist: ScoreHistory, path: str) -> bool:
    """Draw the transition matrices; False (nothing written) without two consecutive grouped epochs."""
    pairs = sorted(hist.transitions)
    if not pairs:
        return False
    panels: list[tuple[str, NDArray[np.int64], list[int] | None]] = []
    if len(pairs) > 1 and len({hist.transitions[p].shape for p in pairs}) == 1:
        panels.append((f"all {len(pairs)} pairs", sum(hist.transitions[p] for p in pairs), None))
    window = {p.epoch: p.stats["window"] for p in data.plans if p.groups}
    panels += [(f"epoch {e} → {f}", hist.transitions[(e, f)], window[e]) for e, f in _evenly(pairs, MAX_PAIRS)]
    fig, axes, ncol = _grid(len(panels), 4, 3.2, 3.0, (0.8, 0.9))
    for ax, (title, counts, win) in zip(axes, panels):
        im = _heatmap(ax, counts, title, win)
    for ax in axes[::ncol]:
        ax.set_ylabel("group before epoch e, samples\n(◀ = in epoch e's kept window)", fontsize=8)
    for ax in _bottom(axes, len(panels), ncol):
        ax.set_xlabel("group before epoch e+1", fontsize=8)
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="fraction of the row's samples", format="{x:.0%}")
    fig.suptitle(_title(data, "Group transitions, epoch e → e+1 (g0 easiest)"))
    fig.savefig(path)
    return True


def plot_label_noise(data: RunData, noisy: NDArray[np.bool_], final: NDArray[np.float32],
                     per: dict[str, list[float]], path: str) -> None:  # fmt: skip
    """Draw the final scores of clean vs mislabeled samples and, per epoch (``per``, from
    :func:`noise_by_epoch`), the mislabeled share of the selection and the mean losses."""
    fig = _figure(14, 4.2)
    a1, a2, a3 = fig.subplots(1, 3)
    ok = np.isfinite(final) & (final > 0)
    lo, hi = (float(final[ok].min()), float(final[ok].max())) if ok.any() else (1e-3, 1.0)
    for mask, color, name in ((~noisy, "#1f77b4", "clean"), (noisy, "#d62728", "mislabeled")):
        v = final[ok & mask]
        label = f"{name} ({int(mask.sum()):,}, median {np.median(v) if len(v) else np.nan:.3g})"
        a1.hist(v, bins=np.geomspace(lo, max(hi, lo * 10), 60), weights=np.full(len(v), 1 / max(len(v), 1)),
                alpha=0.6, color=color, label=label)  # fmt: skip
    a1.set(xscale="log", xlabel="last recorded loss (log scale)", ylabel="fraction of the class's samples",
           title="Final score per sample")  # fmt: skip
    a1.legend(fontsize=8)
    a2.plot(per["epoch"], per["kept_share"], "o-", color="#d62728", ms=3, label="among the epoch's kept samples")
    a2.axhline(noisy.mean(), color="k", ls="--", lw=1, label=f"in the dataset ({noisy.mean():.1%})")
    a2.set(ylabel="mislabeled fraction", title="Mislabeled share of each epoch's selection",
           ylim=(0, max(0.05, float(np.nanmax(per["kept_share"] + [noisy.mean()])) * 1.15)))  # fmt: skip
    a2.yaxis.set_major_formatter("{x:.0%}")
    a3.plot(per["epoch"], per["clean_loss"], "o-", ms=3, color="#1f77b4", label="clean")
    a3.plot(per["epoch"], per["noisy_loss"], "o-", ms=3, color="#d62728", label="mislabeled")
    a3.set(ylabel="mean loss recorded in the epoch", title="Training loss, clean vs mislabeled")
    for ax in (a2, a3):
        _epoch_axis(ax, data)
    fig.suptitle(_title(data, "Label noise") + " (shaded: epochs that do not prune)")
    fig.savefig(path)


def plot_metrics(data: RunData, path: str) -> bool:
    """Draw test accuracy and losses per epoch from metrics.jsonl; False (nothing written) without them."""
    rows = [r for r in data.metrics if r.get("test_acc") is not None or r.get("train_loss") is not None]
    if not rows:
        return False
    ep = [r["epoch"] for r in rows]
    col = {k: np.array([np.nan if r.get(k) is None else r[k] for r in rows], float)
           for k in ("test_acc", "train_loss", "test_loss")}  # fmt: skip
    fig = _figure(11, 4)
    a1, a2 = fig.subplots(1, 2)
    acc = col["test_acc"]
    a1.plot(ep, acc, "o-", ms=3, color="#2ca02c", label="test accuracy")
    if np.isfinite(acc).any():
        b = int(np.nanargmax(acc))
        a1.plot([ep[b]], [acc[b]], "k*", ms=9, label=f"best {acc[b]:.2%} (epoch {ep[b]}); last {acc[-1]:.2%}")
    a1.set(ylabel="test accuracy", title="Test accuracy")
    a1.yaxis.set_major_formatter("{x:.0%}")
    a2.plot(ep, col["train_loss"], "o-", ms=3, color="#1f77b4", label="train loss (on the kept samples)")
    a2.plot(ep, col["test_loss"], "o-", ms=3, color="#ff7f0e", label="test loss")
    a2.set(ylabel="loss", title="Train and test loss")
    for ax in (a1, a2):
        _epoch_axis(ax, data)
    fig.suptitle(_title(data, "Training curves") + " (shaded: epochs that do not prune)")
    fig.savefig(path)
    return True


def write_report(run_dir: str, out: str | None = None, *, ledger: str | None = None,
                 data_dir: str | None = None) -> list[str]:  # fmt: skip
    """Write the run's figures and an index.md into ``out`` (default RUN_DIR/report); returns the PNG paths.

    The label-noise figure needs the run's ledger (``ledger``, else found as in
    :func:`label_noise`) and a label_noise.parquet (in ``data_dir``, else next to
    the shards); without them it is skipped, as the training curves are without
    metrics.jsonl and the transitions without two consecutive k-means epochs.

    Raises:
        SetaStreamError: not a run directory, no manifests, a ledger that is not
            the run's or cannot be opened, ``data_dir`` without label_noise.parquet,
            or matplotlib missing. Nothing is written then.
    """
    data = load_run(run_dir)
    _figure(1, 1)  # matplotlib missing: fail before any work
    noise = label_noise(data, ledger, data_dir)
    out = out or os.path.join(run_dir, "report")
    os.makedirs(out, exist_ok=True)
    plot_kept(data, os.path.join(out, "kept_per_epoch.png"))
    hist = score_history(data)
    plot_loss_histograms(data, hist, os.path.join(out, "loss_histograms.png"))
    names = ["kept_per_epoch.png", "loss_histograms.png"]
    if plot_transitions(data, hist, os.path.join(out, "group_transitions.png")):
        names.append("group_transitions.png")
    if noise is not None:
        plot_label_noise(data, *noise, noise_by_epoch(data, noise[0]), os.path.join(out, "label_noise.png"))
        names.append("label_noise.png")
    if plot_metrics(data, os.path.join(out, "test_accuracy.png")):
        names.append("test_accuracy.png")
    c = data.info.config
    lines = [f"# Run report: {os.path.abspath(run_dir)}", "",
             f"Policy {c['policy']}, {len(data.plans)} of {c['epochs']} epochs planned, {data.n_samples:,} samples, "
             f"{saved_fraction(data)[-1]:.1%} of sample-steps saved.", ""]  # fmt: skip
    lines += [f"- [{name}]({name}): {CAPTIONS[name]}" for name in names]
    with open(os.path.join(out, "index.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return [os.path.join(out, name) for name in names]
