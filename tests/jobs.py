"""A small, deterministic training job over real shards, for multi-rank and kill/resume tests.

Run as a script (``python tests/jobs.py ...``) it starts ``--world-size``
processes (gloo on CPU) and trains a linear model on the shards' bytes with a
Pruner, checkpointing the model after every ``end_epoch``; started again on the
same run directory it resumes from the checkpoint, as a user's job would.

``--kill-at E:S`` makes rank 0 SIGKILL itself at step S of epoch E;
``SETA_STREAM_FAILPOINT`` kills at the library's failpoints. ``--die-at E:S:R``
makes rank R exit abruptly at step S of epoch E (the others must fail, not hang).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import webdataset as wds

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from seta_stream import Pruner  # noqa: E402


def features(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[type-arg]
    raw = torch.tensor([list(b[:16]) for b in batch["bin"]], dtype=torch.float32) / 255.0
    ids = batch["__sample_id__"].float()
    x = raw + torch.stack([torch.sin(ids * (k + 1)) for k in range(16)], dim=1)
    y = torch.tensor([int(c) for c in batch["cls"]])
    return x, y


def run(rank: int, a: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    if a.world_size > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(a.world_size))  # as torchrun sets them
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}", rank=rank,
                                world_size=a.world_size, timeout=dt.timedelta(seconds=a.timeout))  # fmt: skip
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ckpt = os.path.join(a.run, "ckpt.pt")
    start = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"] + 1
    config = json.loads(a.config)
    pruner = Pruner(a.run, ledger=a.ledger, config=config, barrier_timeout=a.timeout, reader=a.reader)
    kill = tuple(map(int, a.kill_at.split(":"))) if a.kill_at else None
    die = tuple(map(int, a.die_at.split(":"))) if a.die_at else None
    steps = {}
    for epoch in range(start, config["epochs"]):
        if a.own_pipeline:  # the README's pipeline of one's own: this rank's shards, the stage, a DataLoader
            stage = pruner.stage(epoch, batch_size=a.batch_size)
            ds = wds.WebDataset(pruner.shard_urls(), shardshuffle=False, nodesplitter=None).compose(stage)
            loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers)
        else:
            loader = pruner.loader(epoch, batch_size=a.batch_size, num_workers=a.workers)
        n = 0
        for step, batch in enumerate(loader):
            if kill == (epoch, step) and rank == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            if die is not None and die[:2] == (epoch, step) and die[2] == rank:
                os._exit(3)
            x, y = features(batch)
            loss = pruner.update(torch.nn.functional.cross_entropy(model(x), y, reduction="none"), batch)
            opt.zero_grad()
            loss.backward()
            if a.world_size > 1 and a.sync_grads:
                for p in model.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= a.world_size
            opt.step()
            n += 1
        steps[epoch] = (n, pruner.steps_this_epoch)
        pruner.end_epoch()
        if rank == 0:
            tmp = ckpt + ".tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch}, tmp)
            os.replace(tmp, ckpt)
    with open(os.path.join(a.run, f"steps-rank{rank}.json"), "w") as f:
        json.dump(steps, f)
    if a.world_size > 1:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ledger", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--config", required=True, help="policy config as JSON")
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--port", type=int, default=29511)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--reader", default="auto")
    p.add_argument("--sync-grads", action="store_true")
    p.add_argument("--own-pipeline", action="store_true", help="wds.WebDataset + pruner.stage instead of pruner.loader")
    p.add_argument("--kill-at", default=None)
    p.add_argument("--die-at", default=None)
    a = p.parse_args(argv)
    if a.world_size == 1:
        run(0, a)
        return 0
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run, args=(r, a)) for r in range(a.world_size)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    codes = [proc.exitcode for proc in procs]
    print(json.dumps({"exitcodes": codes}))
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
