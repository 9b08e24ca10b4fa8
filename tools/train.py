#!/usr/bin/env python3
"""Train a 1-D CNN on MNIST-1D shards with dynamic pruning (seta_stream.Pruner).

    python tools/train.py --config configs/mnist1d.yaml --data data/mnist1d --run runs/seta
    python tools/train.py --config configs/mnist1d.yaml --data data/mnist1d --run runs/full --policy full
    torchrun --nproc-per-node 2 tools/train.py --config configs/mnist1d.yaml --data data/mnist1d --run runs/ddp

The training shards stream from DATA/train through the Pruner (pruned samples
are never read); the test shards (DATA/test) are evaluated after every epoch.
Each run keeps its own copy of the dataset's ledger (RUN_DIR/ledger.duckdb),
since the ledger holds the run's losses. Per epoch it logs the samples kept,
the cumulative saved fraction, train loss, test accuracy and wall time, and
appends them to RUN_DIR/metrics.jsonl. A checkpoint after every epoch makes a
killed run resumable: run the same command again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import io
import json
import math
import os
import shutil
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from seta_stream import Pruner, build_ledger, load_config  # noqa: E402
from seta_stream.policies import POLICIES  # noqa: E402


class CNN1D(torch.nn.Module):
    """The MNIST-1D convolutional baseline: three strided convolutions, then a linear layer."""

    def __init__(self, width: int = 32, length: int = 40, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, width, 5, stride=2, padding=1)
        self.conv2 = torch.nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv1d(width, width, 3, stride=2, padding=1)
        n = length
        for k, p in ((5, 1), (3, 1), (3, 1)):
            n = (n + 2 * p - k) // 2 + 1
        self.head = torch.nn.Linear(width * n, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x.unsqueeze(1)))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.head(h.flatten(1))


def decode(sample: dict[str, Any]) -> dict[str, Any]:
    """npy signal + cls label -> tensors (runs in DataLoader workers, after pruning)."""
    return {"x": torch.from_numpy(np.load(io.BytesIO(sample["npy"]))), "y": int(sample["cls"])}


def load_test_set(data: str) -> tuple[torch.Tensor, torch.Tensor]:
    import webdataset as wds

    paths = sorted(glob.glob(os.path.join(data, "test", "*.tar")))
    if not paths:
        raise SystemExit(f"no test shards in {os.path.join(data, 'test')}")
    xs, ys = [], []
    # Every rank evaluates on the whole test set: no node or worker split.
    for s in wds.WebDataset(paths, shardshuffle=False, nodesplitter=None, workersplitter=None):
        xs.append(np.load(io.BytesIO(s["npy"])))
        ys.append(int(s["cls"]))
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch):
        xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
        out = model(xb)
        loss += F.cross_entropy(out, yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
    model.train()
    return correct / len(y), loss / len(y)


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=dt.timedelta(minutes=30))
        device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        return dist.get_rank(), world, device
    return 0, 1, torch.device("cuda" if use_cuda else "cpu")


def prepare_ledger(data: str, run: str, rank: int) -> str:
    """The run's own ledger: a copy of DATA/ledger.duckdb (built once if missing)."""
    ledger = os.path.join(run, "ledger.duckdb")
    if rank == 0 and not os.path.exists(ledger):
        os.makedirs(run, exist_ok=True)
        template = os.path.join(data, "ledger.duckdb")
        if not os.path.exists(template):
            build_ledger(os.path.join(data, "train"), template, root=data, progress=False)
        shutil.copy(template, ledger + ".tmp")
        os.replace(ledger + ".tmp", ledger)
    if dist.is_initialized():
        dist.barrier()
    return ledger


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True, help="directory made by make_mnist1d_shards.py")
    # --run-dir is the spelling to use under torchrun, whose own parser takes a bare
    # --run for an abbreviation of its --run-path and stops with an error.
    p.add_argument("--run", "--run-dir", dest="run", required=True, help="run directory (under torchrun: --run-dir)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--policy", choices=list(POLICIES))
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a policy field")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)

    cfg = load_config(a.config)
    overrides = parse_overrides(a.set)
    for name in ("epochs", "policy", "seed"):
        if getattr(a, name) is not None:
            overrides[name] = getattr(a, name)
    if overrides:
        cfg = cfg.replace(**overrides)
    policy, train = cfg.policy, cfg.train
    rank, world, device = setup_distributed(a.device)
    torch.manual_seed(policy.seed)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    ledger = prepare_ledger(a.data, a.run, rank)
    pruner = Pruner(a.run, ledger=ledger, config=cfg)

    model = CNN1D(train.width).to(device)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[train.optimizer]
    kw: dict[str, Any] = {"lr": train.lr, "weight_decay": train.weight_decay}
    if train.optimizer == "sgd":
        kw["momentum"] = train.momentum
    opt = opt_cls(model.parameters(), **kw)
    ckpt_path = os.path.join(a.run, "checkpoint.pt")
    start = 0
    if os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"] + 1
    net: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    x_test, y_test = load_test_set(a.data)
    metrics_path = os.path.join(a.run, "metrics.jsonl")
    if rank == 0:
        kept_lines = []
        if os.path.exists(metrics_path):
            kept_lines = [ln for ln in open(metrics_path) if ln.strip() and json.loads(ln).get("epoch", -1) < start]
        with open(metrics_path, "w") as f:
            f.writelines(kept_lines)
        if start:
            print(f"resuming at epoch {start} from {ckpt_path}")

    n_samples = pruner.progress()["n_samples"]
    train_time = 0.0
    t_run = time.perf_counter()
    acc = float("nan")
    for epoch in range(start, policy.epochs):
        t0 = time.perf_counter()
        loader = pruner.loader(epoch, batch_size=train.batch_size, decode=decode,
                               num_workers=train.num_workers if a.workers is None else a.workers)  # fmt: skip
        steps = pruner.steps_this_epoch or 0
        total, count = 0.0, 0
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch}", leave=False, disable=a.quiet or rank != 0,
                   dynamic_ncols=True)  # fmt: skip
        for i, batch in enumerate(bar):
            progress = (epoch + i / max(steps, 1)) / policy.epochs
            lr = train.lr * (0.5 * (1 + math.cos(math.pi * progress)) if train.schedule == "cosine" else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = batch["x"].to(device, non_blocking=True), batch["y"].to(device, non_blocking=True)
            per_sample = F.cross_entropy(net(x), y, reduction="none")
            loss = pruner.update(per_sample, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() if i % 10 == 0 else 0.0
            count += 1 if i % 10 == 0 else 0
        bar.close()
        report = pruner.end_epoch()
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        if rank == 0:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch}, ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
            t1 = time.perf_counter()
            acc, test_loss = evaluate(model, x_test, y_test, train.eval_batch_size, device)
            m = pruner.manifest
            row = {
                "epoch": epoch,
                "phase": m.summary["stats"].get("phase") if m else None,
                "kept": report.planned,
                "sample_steps": report.sample_steps,
                "saved_fraction": round(report.saved_fraction, 6),
                "train_loss": round(total / max(count, 1), 6),
                "test_acc": round(acc, 6),
                "test_loss": round(test_loss, 6),
                "epoch_time_s": round(epoch_time, 3),
                "eval_time_s": round(time.perf_counter() - t1, 3),
                "lr_end": lr if steps else None,
            }
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"epoch {epoch:3d}  {row['phase']:6s}  kept {report.planned:7,d}/{n_samples:,}  "
                  f"saved {100 * report.saved_fraction:5.1f}%  loss {row['train_loss']:.4f}  "
                  f"test acc {100 * acc:6.2f}%  {epoch_time:6.1f} s", flush=True)  # fmt: skip
    if rank == 0:
        rows = [json.loads(ln) for ln in open(metrics_path) if ln.strip()]
        steps_run = sum(r["sample_steps"] for r in rows)
        trained = sum(r["epoch_time_s"] for r in rows)
        per_step = trained / max(steps_run, 1)
        full_est = per_step * n_samples * policy.epochs
        saved = rows[-1]["saved_fraction"] if rows else 0.0
        summary = {
            "policy": policy.policy,
            "epochs": policy.epochs,
            "test_acc": rows[-1]["test_acc"] if rows else None,
            "best_test_acc": max((r["test_acc"] for r in rows), default=None),
            "saved_fraction": saved,
            "sample_steps": steps_run,
            "train_time_s": round(trained, 2),
            "full_data_time_estimate_s": round(full_est, 2),
            "wall_time_s": round(time.perf_counter() - t_run, 2),
        }
        with open(os.path.join(a.run, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(
            f"\ndone: test accuracy {100 * summary['test_acc']:.2f}% after {policy.epochs} epochs of {policy.policy}; "
            f"saved {100 * saved:.1f}% of sample-steps ({steps_run:,} of {n_samples * policy.epochs:,}); "
            f"training took {trained:.1f} s, about {full_est:.1f} s with full data"
        )
        print("inspect the run:")
        print(f"  seta-stream info --ledger {ledger}")
        print(f"  seta-stream sql --ledger {ledger} \"SELECT shard, key, loss, n_seen FROM sample_scores "
              f"ORDER BY loss DESC LIMIT 10\"")  # fmt: skip
        print(f"  seta-stream sql --ledger {ledger} --run {a.run} \"SELECT epoch, count(*) AS records, avg(loss) "
              f"FROM losses GROUP BY epoch ORDER BY epoch\"")  # fmt: skip
        print(f"  seta-stream report {a.run}")
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
