#!/usr/bin/env python3
"""Generate MNIST-1D (Greydanus, 2020) at any size and write it as WebDataset shards.

Uses the ``mnist1d`` package's offline generator (``make_dataset`` with a
``num_samples`` of our choosing; never its download path). Samples are made in
chunks of 10,000, each chunk with its own seed derived from ``--seed``, so the
content is deterministic and a progress bar can follow the generation. Train
and test sets are independent draws from the same generator.

Output layout::

    OUT/train/train-000000.tar ...   {key}.npy (float32[40]) + {key}.cls (label)
    OUT/test/test-000000.tar ...
    OUT/dataset.json                 sizes, seed, noise, generator settings
    OUT/label_noise.parquet          with --label-noise: shard, key, clean and noisy label

Tar files are byte-for-byte reproducible (fixed mtime, ustar headers).

Example::

    python tools/make_mnist1d_shards.py --out data/mnist1d --train 50000 --test 5000 --label-noise 0.2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

CHUNK = 10_000
_TRAIN_STREAM, _TEST_STREAM, _NOISE_STREAM = 1, 2, 3


def _generate(n: int, seed: int, stream: int, desc: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """n samples from the MNIST-1D generator, in chunks seeded from (seed, stream, chunk)."""
    import mnist1d.data
    from tqdm import tqdm

    xs, ys = [], []
    with tqdm(total=n, desc=desc, unit="sample", disable=not progress, dynamic_ncols=True) as bar:
        for c, start in enumerate(range(0, n, CHUNK)):
            size = min(CHUNK, n - start)
            args = mnist1d.data.get_dataset_args()
            args.num_samples = -(-size // 10) * 10  # make_dataset draws num_samples // 10 per class
            args.train_split = 1.0
            args.seed = int(np.random.SeedSequence([seed, stream, c]).generate_state(1)[0] % (2**31))
            data = mnist1d.data.make_dataset(args)
            xs.append(data["x"][:size].astype(np.float32))
            ys.append(data["y"][:size].astype(np.int64))
            bar.update(size)
    if not xs:
        return np.zeros((0, 40), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def _write(outdir: str, prefix: str, x: np.ndarray, y: np.ndarray, per_shard: int) -> list[tuple[str, str]]:
    """Write shards; returns (shard name, key) per sample in order."""
    import webdataset as wds

    os.makedirs(outdir, exist_ok=True)
    names = []
    pattern = os.path.join(outdir, f"{prefix}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0, mtime=1_600_000_000) as w:
        for i in range(len(y)):
            key = f"{prefix}{i:08d}"
            w.write({"__key__": key, "npy": x[i], "cls": int(y[i])})
            names.append((f"{os.path.basename(outdir)}/{prefix}-{i // per_shard:06d}.tar", key))
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--train", type=int, required=True, help="training samples")
    p.add_argument("--test", type=int, required=True, help="test samples")
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of training labels to flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples-per-shard", type=int, default=1000)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.train < 1 or a.test < 0:
        p.error("--train must be >= 1 and --test >= 0")
    if not 0.0 <= a.label_noise < 1.0:
        p.error(f"--label-noise must be in [0, 1), got {a.label_noise}")
    if a.samples_per_shard < 1:
        p.error("--samples-per-shard must be >= 1")
    if os.path.exists(os.path.join(a.out, "dataset.json")):
        p.error(f"{a.out} already holds a dataset; choose another --out or remove it")

    t0 = time.perf_counter()
    x, y = _generate(a.train, a.seed, _TRAIN_STREAM, "train", not a.quiet)
    xt, yt = _generate(a.test, a.seed, _TEST_STREAM, "test", not a.quiet)
    clean = y.copy()
    flipped = np.zeros(0, np.int64)
    if a.label_noise > 0:
        rng = np.random.default_rng([a.seed, _NOISE_STREAM])
        flipped = np.sort(rng.choice(a.train, int(round(a.label_noise * a.train)), replace=False))
        # a flipped label is uniform over the nine other classes
        y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    train_names = _write(os.path.join(a.out, "train"), "train", x, y, a.samples_per_shard)
    if a.test:
        _write(os.path.join(a.out, "test"), "test", xt, yt, a.samples_per_shard)
    if len(flipped):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(
            pa.table({
                "shard": [train_names[i][0] for i in flipped],
                "key": [train_names[i][1] for i in flipped],
                "clean_label": clean[flipped],
                "label": y[flipped],
            }),
            os.path.join(a.out, "label_noise.parquet"),
        )  # fmt: skip
    meta = {
        "dataset": "mnist1d",
        "train": a.train,
        "test": a.test,
        "label_noise": a.label_noise,
        "flipped": int(len(flipped)),
        "seed": a.seed,
        "samples_per_shard": a.samples_per_shard,
        "train_shards": "train/train-{%06d..%06d}.tar" % (0, (a.train - 1) // a.samples_per_shard),
        "test_shards": "test/test-{%06d..%06d}.tar" % (0, max(a.test - 1, 0) // a.samples_per_shard),
        "signal_length": int(x.shape[1]),
        "classes": 10,
    }
    with open(os.path.join(a.out, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if not a.quiet:
        print(
            f"wrote {a.train:,} train and {a.test:,} test samples to {a.out} "
            f"({len(flipped):,} labels flipped) in {time.perf_counter() - t0:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
