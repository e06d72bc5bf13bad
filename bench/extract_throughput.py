"""Throughput of ``smie extract-visual``: sequences/s and where the wall time goes.

Builds its own synthetic skeleton cache (random walks, NTU-sized by default: (N, 3, 50, 25, 2)) and a randomly
initialised ST-GCN checkpoint in a temporary directory, so it runs anywhere. Each sequence costs one forward
pass over T frames plus ``--views`` passes over T - 30 frames (official masking). Prints sequences/s, the
share of wall time spent in the backbone's forward pass (goal >= 80 %; the rest is reading, masking, writing,
hashing and loading), and the backbone alone on the same input for reference. On CUDA (bf16 autocast) a
warm-up extraction runs first.

    OMP_NUM_THREADS=2 python bench/extract_throughput.py --device cpu --n 256
    python bench/extract_throughput.py --device cuda --n 16384 [--workers 4] [--json results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.features.skeletons import SkeletonSet, write_skeletons  # noqa: E402
from smie.features.store import file_sha256  # noqa: E402
from smie.pipeline.visual.backbones import build_backbone, save_checkpoint  # noqa: E402
from smie.pipeline.data.layouts import get_layout  # noqa: E402
from smie.pipeline.data.splits import resolve_split  # noqa: E402
from smie.pipeline.device import resolve_device  # noqa: E402
from smie.pipeline.visual.extract import ExtractConfig, extract_visual  # noqa: E402

NUM_CLASSES = 10


def build_inputs(d: Path, n: int, frames: int, layout: str, bodies: int, size: str, seed: int) -> tuple[Path, Path]:
    """A synthetic skeleton cache (n, 3, frames, V, bodies) and a random-init backbone checkpoint for it."""
    rng = np.random.default_rng(seed)
    V = get_layout(layout).num_joints
    data = np.empty((n, 3, frames, V, bodies), np.float32)
    for i in range(0, n, 1024):
        m = min(1024, n - i)
        data[i : i + m] = np.cumsum(rng.normal(0, 0.02, (m, 3, frames, V, bodies)), axis=2, dtype=np.float32)
    sset = SkeletonSet(
        data=data, labels=np.arange(n, dtype=np.int64) % NUM_CLASSES, lengths=np.full(n, frames, np.int32),
        sample_ids=tuple(f"bench{i:07d}" for i in range(n)),
        class_names=tuple(f"action {c}" for c in range(NUM_CLASSES)), layout=layout, dataset="synthetic",
    )
    skel, ckpt = d / "skeletons.h5", d / "backbone.pt"
    write_skeletons(skel, sset, {"bench": "extract_throughput"})
    torch.manual_seed(seed)
    save_checkpoint(
        ckpt, build_backbone("stgcn", layout, size), split=resolve_split("random:2:seed=0", NUM_CLASSES),
        partition={"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0},
        class_names=sset.class_names, num_frames=frames, skeleton_sha256=file_sha256(skel), provenance={},
    )
    return skel, ckpt


def backbone_alone(ckpt_layout: str, size: str, device: torch.device, x_shape: tuple, iters: int = 5) -> float:
    """Sequences/s of the bare backbone forward (no I/O, no masking) at one batch shape."""
    model = build_backbone("stgcn", ckpt_layout, size).to(device).eval()
    x = torch.randn(*x_shape, device=device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return iters * x_shape[0] / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--n", type=int, default=None, help="sequences (default 256 on CPU, 16384 on CUDA)")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--layout", default="ntu-25")
    ap.add_argument("--bodies", type=int, default=2)
    ap.add_argument("--size", default="small", help="ST-GCN size preset (small = SMIE's)")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="reader processes (default: extract-visual's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    n = args.n or (16384 if device.type == "cuda" else 256)
    with tempfile.TemporaryDirectory(prefix="smie-bench-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        skel, ckpt = build_inputs(d, n, args.frames, args.layout, args.bodies, args.size, args.seed)
        print(f"built {n} synthetic sequences {(n, 3, args.frames, get_layout(args.layout).num_joints, args.bodies)}"
              f" + checkpoint in {time.perf_counter() - t0:.1f} s")
        cfg = ExtractConfig(skeletons=skel, backbone=ckpt, out=d / "visual.h5", views=args.views,
                            batch_size=args.batch_size, chunk_size=args.chunk_size, device=str(device),
                            seed=args.seed, resume=False, workers=args.workers)
        if device.type == "cuda":
            extract_visual(cfg)
        timer: dict = {}
        t0 = time.perf_counter()
        extract_visual(cfg, timer)
        wall = time.perf_counter() - t0
    other = wall - sum(timer.values())
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, views {args.views}")
    print(f"extract-visual: {n / wall:.1f} sequences/s ({n} in {wall:.2f} s)")
    print(f"forward share of wall time: {100 * timer['forward'] / wall:.1f} % (goal >= 80 %)")
    print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in timer.items()) + f", setup/hash/load {other:.2f} s")
    bs, V = args.batch_size, get_layout(args.layout).num_joints
    full = backbone_alone(args.layout, args.size, device, (bs, 3, args.frames, V, args.bodies))
    short = backbone_alone(args.layout, args.size, device, (bs * args.views, 3, args.frames - 30, V, args.bodies))
    per_seq = 1 / (1 / full + args.views / short)
    print(f"backbone alone: {full:.1f} seq/s at {args.frames} frames, {short:.1f} seq/s at {args.frames - 30} "
          f"frames; full + {args.views} views = {per_seq:.1f} sequences/s ceiling")
    if args.json is not None:
        args.json.write_text(json.dumps(dict(
            device=str(device), device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            n=n, input=[n, 3, args.frames, V, args.bodies], batch=bs, views=args.views, seq_per_s=n / wall,
            wall_s=wall, forward_share=timer["forward"] / wall, phases=timer, backbone_alone_full=full,
            backbone_alone_views=short, ceiling_seq_per_s=per_seq), indent=2) + "\n")


if __name__ == "__main__":
    main()
