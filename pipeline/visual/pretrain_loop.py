"""Device, distributed setup, data loading and the per-epoch loops of backbone pretraining.

Kept apart from :mod:`smie.pipeline.visual.pretrain` (which decides *what* is trained on) so that file stays about the
seen/unseen discipline. Batches are index lists into an in-memory (N, C, T, V, M) tensor; every batch carries
the row indices it was built from so the caller can prove which samples were served.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from smie.pipeline.device import resolve_device


@dataclass
class DistEnv:
    """Where this process trains: world size, rank, device; ``world == 1`` is plain single-device training."""

    world: int
    rank: int
    device: torch.device

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def autocast(self):
        """bf16 autocast on CUDA; nothing on CPU (bf16 convolutions there are slow and change results)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def setup_distributed(device_name: str) -> DistEnv:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return DistEnv(1, 0, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistEnv(world, rank, device)


class Rows(Dataset):
    """Samples ``index`` of ``data`` (N, C, T, V, M); item = a list of positions -> (x, y, rows) for a batch."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor, index: np.ndarray):
        self.data, self.labels, self.index = data, labels, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, positions):
        rows = torch.from_numpy(self.index[np.asarray(positions, dtype=np.int64)])
        return self.data[rows], self.labels[rows], rows


def make_loader(data, labels, index, batch_size: int, env: DistEnv, shuffle: bool, seed: int, epoch: int = 0,
                num_workers: int = 0, distributed: bool = True) -> DataLoader:
    """Batches of ``index``; shuffled by a generator seeded from (seed, epoch) so a resumed run sees the same order.

    Under DDP ``batch_size`` is the global batch, split over the ranks.
    """
    ds = Rows(data, labels, index)
    if env.world > 1 and distributed:
        sampler = DistributedSampler(ds, env.world, env.rank, shuffle=shuffle, seed=seed)
        sampler.set_epoch(epoch)
        per_rank = max(1, -(-batch_size // env.world))
    else:
        order = torch.arange(len(ds))
        if shuffle:
            order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        sampler, per_rank = order.tolist(), batch_size
    return DataLoader(ds, batch_size=None, sampler=BatchSampler(sampler, per_rank, drop_last=False),
                      num_workers=num_workers, pin_memory=env.device.type == "cuda")


def run_epoch(net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, env: DistEnv,
              served: set[int], desc: str = "", progress: bool = True) -> dict:
    """One pass of cross-entropy training; returns mean loss and accuracy of this rank's batches."""
    net.train()
    total, loss_sum, correct = 0, 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress or env.rank != 0)
    for x, y, rows in bar:
        served.update(rows.tolist())
        x = x.to(env.device, non_blocking=True)
        y = y.to(env.device, non_blocking=True)
        with env.autocast():
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(y)
        total += n
        loss_sum += float(loss.detach()) * n
        correct += int((logits.detach().argmax(1) == y).sum())
        bar.set_postfix(loss=f"{loss_sum / total:.4f}")
    return {"loss": loss_sum / max(total, 1), "train_acc": correct / max(total, 1)}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, env: DistEnv) -> tuple[float, set[int]]:
    """Top-1 accuracy of ``model`` (not DDP-wrapped: every rank scores the whole set) and the rows scored."""
    model = model.module if hasattr(model, "module") else model
    model.eval()
    correct, total, served = 0, 0, set()
    for x, y, rows in loader:
        served.update(rows.tolist())
        with env.autocast():
            logits = model(x.to(env.device, non_blocking=True))
        correct += int((logits.argmax(1).cpu() == y).sum())
        total += len(y)
    return correct / max(total, 1), served
