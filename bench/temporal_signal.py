"""Does a keyframe-masked view carry temporal information that a random frame subset does not?

SMIE's temporal constraint asks the critic to find less mutual information in a keyframe-masked sequence than in
the whole one. That only teaches something about motion if removing the *keyframes* changes the backbone's
feature more than removing the same number of *random* frames. For one backbone and skeleton cache this prints,
over the samples, the mean cosine distance of the full-sequence feature to the feature of:

- ``keyframe``: the masked view of ``--masking`` (``paper``: the k highest-motion frames removed; ``official``:
  those plus ``drop`` random frames);
- ``random``: as many frames removed uniformly at random (order kept);
- ``shuffled``: every frame kept, in a random order (is the backbone sensitive to order at all?);

and the ratio keyframe / random (about 1: the masked view is just a shorter sequence).

    python bench/temporal_signal.py --skeletons msr.h5 --backbone fold0/main.pt [--masking paper --k 9]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def measure(skeletons: Path, backbone: Path, masking: str, k: int, drop: int, limit: int, seed: int) -> dict:
    from smie.features.skeletons import read_skeletons
    from smie.pipeline.visual.backbones import embed, load_backbone
    from smie.pipeline.visual.keyframes import gather_frames, masked_views

    device = torch.device("cpu")
    module, _ = load_backbone(backbone, device)
    sset = read_skeletons(skeletons)
    x = torch.from_numpy(sset.data[:limit])
    N, C, T, V, M = x.shape
    gen = torch.Generator().manual_seed(seed)
    views = masked_views(x, masking, k, drop, 1, seed, np.arange(N))[:, 0]
    kept = views.shape[2]
    rand = torch.stack([torch.sort(torch.randperm(T, generator=gen)[:kept]).values for _ in range(N)])[:, None]
    shuf = torch.stack([torch.randperm(T, generator=gen) for _ in range(N)])[:, None]
    feats = {}
    for name, inp in (("full", x), ("keyframe", views), ("random", gather_frames(x, rand)[:, 0]),
                      ("shuffled", gather_frames(x, shuf)[:, 0])):
        feats[name] = torch.cat([embed(module, inp[i:i + 64], device) for i in range(0, N, 64)])
    dist = {name: float((1 - torch.nn.functional.cosine_similarity(feats["full"], f)).mean())
            for name, f in feats.items() if name != "full"}
    dist["ratio keyframe/random"] = dist["keyframe"] / max(dist["random"], 1e-12)
    dist.update(samples=N, frames=T, kept=kept, masking=masking, k=k, drop=drop)
    return dist


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skeletons", type=Path, required=True)
    p.add_argument("--backbone", type=Path, required=True)
    p.add_argument("--masking", default="official", choices=("official", "paper"))
    p.add_argument("--k", type=int, default=9)
    p.add_argument("--drop", type=int, default=9)
    p.add_argument("--limit", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    res = measure(args.skeletons, args.backbone, args.masking, args.k, args.drop, args.limit, args.seed)
    print(f"{res['samples']} samples, {res['frames']} frames, {res['kept']} kept ({res['masking']}, k={res['k']}, "
          f"drop={res['drop']}); mean cosine distance to the full-sequence feature:")
    for name in ("keyframe", "random", "shuffled", "ratio keyframe/random"):
        print(f"  {name:22s} {res[name]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
