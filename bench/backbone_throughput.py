"""Training and inference throughput (sequences/s) of the smie backbones on one device.

Input is (N, 3, 50, 25, 2), the NTU shape SMIE uses. Training = forward, cross entropy through a linear head,
backward and an Adam step; inference = forward under ``torch.no_grad`` in eval mode. On CUDA both run under
bf16 autocast, as ``smie pretrain-backbone`` does, and are timed with device synchronisation.

    python bench/backbone_throughput.py --device auto [--batch 64] [--iters 10] [--models stgcn:small]
        [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.pipeline.visual.backbones import build_backbone  # noqa: E402
from smie.pipeline.device import resolve_device  # noqa: E402
from smie.pipeline.visual.pretrain_loop import DistEnv  # noqa: E402

MODELS = (("stgcn", "small"), ("stgcn", "standard"), ("shiftgcn", "standard"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return time.perf_counter() - start


def measure(arch: str, size: str, device: torch.device, batch: int, frames: int, warmup: int, iters: int) -> dict:
    """Sequences per second for training and inference of one backbone; parameter count in millions."""
    env = DistEnv(1, 0, device)
    torch.manual_seed(0)
    model = build_backbone(arch, "ntu-25", size).to(device)
    head = torch.nn.Linear(model.feature_dim, 60).to(device)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-3)
    x = torch.randn(batch, 3, frames, 25, 2, device=device)
    y = torch.randint(0, 60, (batch,), device=device)

    def train_step():
        with env.autocast():
            logits = head(model(x))
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer_step():
        with env.autocast():
            model(x)

    model.train()
    train_s = _timed(train_step, device, warmup, iters)
    model.eval()
    infer_s = _timed(infer_step, device, warmup, iters)
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "train": batch * iters / train_s,
        "infer": batch * iters / infer_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 128 CUDA, 16 CPU)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--iters", type=int, default=None, help="timed steps (default 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--models", default=",".join(f"{a}:{s}" for a, s in MODELS),
                        help="comma list of arch:size (default: all three)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    models = [tuple(m.strip().split(":")) for m in args.models.split(",") if m.strip()]
    if not models or any(len(m) != 2 for m in models):
        parser.error("--models takes arch:size pairs, e.g. stgcn:small,shiftgcn:standard")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (128 if cuda else 16)
    iters = args.iters or (20 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; input ({batch}, 3, {args.frames}, 25, 2); {iters} timed steps after {warmup} warm-up;"
          f" {'bf16 autocast' if cuda else 'float32'}")
    print(f"{'backbone':<20} {'params (M)':>10} {'train seq/s':>12} {'infer seq/s':>12}")
    results = {}
    for arch, size in models:
        r = measure(arch, size, device, batch, args.frames, warmup, iters)
        results[f"{arch}-{size}"] = r
        print(f"{arch + ' ' + size:<20} {r['params_m']:>10.2f} {r['train']:>12.1f} {r['infer']:>12.1f}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(dict(device=name, input=[batch, 3, args.frames, 25, 2], iters=iters,
                                             warmup=warmup, autocast="bf16" if cuda else None, models=results),
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
