"""Cost of one SMIE estimator experiment from the feature cache versus the official code's way, same data.

The official code (YujieOuO/SMIE ``procedure.py``) runs the frozen ST-GCN at every training step on the full
clip and on a keyframe-masked clip, and again on the whole test set after every epoch. The two-stage pipeline
runs the GCN once (extraction: full clip + W masked views per sample) and then trains the estimator on cached
tensors. This script times, on the same synthetic skeletons and a randomly initialised ST-GCN from
``smie.pipeline.visual.backbones.build_backbone``:

- ``official``: epochs x (GCN on full + masked batch, estimator step) + per-epoch GCN test pass;
- ``extract``: the one-off cache build (counted separately: one cache serves every later experiment);
- ``cached``: the same epochs of estimator training + per-epoch test scoring, from the tensors alone.

The GCN runs under ``no_grad`` in the official path (the code computes it with a graph and ``detach``es,
which is slower), so the ratio printed is conservative. For the same reason both paths run on the allocator
stage two's commands set up (``--heap keep``, :func:`smie.pipeline.zsl.compute.apply_heap`: freed memory kept, no
page faults per step), which speeds the GCN up more than the estimator; ``--heap system`` runs both on glibc's
defaults, as the official code runs.
Usage::

    python bench/stage2_cost.py [--samples 512] [--epochs 2] [--device cpu] [--json results.json]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def synthetic(samples: int, test: int, classes: int, sem_dim: int, seed: int, T: int = 50, V: int = 25, M: int = 2):
    """Skeletons (N, C, T, V, M) with a class-dependent motion, labels, and (K, E) class semantics."""
    g = torch.Generator().manual_seed(seed)
    N = samples + test
    labels = torch.randint(classes, (N,), generator=g)
    t = torch.linspace(0, 6.28, T)
    freq = 1.0 + labels.float()[:, None] * 0.3
    wave = torch.sin(freq * t[None, :])  # (N, T)
    x = 0.1 * torch.randn(N, 3, T, V, M, generator=g) + wave[:, None, :, None, None]
    sem = torch.nn.functional.normalize(torch.randn(classes, sem_dim, generator=g), dim=-1)
    return x, labels, sem


def run_bench(samples=512, test=128, epochs=2, batch_size=128, classes=10, sem_dim=768, views=4, device="cpu",
              seed=0, heap="system") -> dict:
    from smie.pipeline.visual.backbones import build_backbone
    from smie.pipeline.zsl.estimator import SMIEEstimator
    from smie.pipeline.zsl.fit import FitOptions, train_method
    from smie.pipeline.zsl.method import TrainSet
    from smie.pipeline.visual.keyframes import masked_views

    from smie.pipeline.zsl.compute import Compute, apply_heap, matmul_backend

    heap = apply_heap(Compute(heap=heap))  # this script is the process's entry point; both paths share the heap
    dev = torch.device(device)
    x, labels, sem = synthetic(samples, test, classes, sem_dim, seed)
    x_train, y_train, x_test = x[:samples], labels[:samples], x[samples:]
    torch.manual_seed(seed)
    gcn = build_backbone("stgcn", "ntu-25", "small").to(dev).eval()
    D = 256

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def encode(batch):
        with torch.no_grad():
            return gcn(batch.to(dev))

    # untimed warm-up of both paths at the timed shapes (first-call costs: lazy optimizer imports, the allocator,
    # the kernels oneDNN generates per shape): one batch through the GCN, one epoch of the estimator
    warm = SMIEEstimator(D, sem_dim).to(dev)
    train_method(warm, TrainSet(torch.randn(samples, D), torch.randn(samples, views, D), y_train, sem),
                 FitOptions(epochs=1, batch_size=batch_size, lr=1e-5, warmup=0, seed=seed, device=device),
                 lambda e, m: m.scores(torch.randn(test, D, device=dev), sem.to(dev)))
    encode(x_train[:batch_size])
    encode(masked_views(x_train[:batch_size], "official", k=15, drop=15, views=1, seed=0)[:, 0])

    # official: GCN inside the training loop
    torch.manual_seed(seed)
    model = SMIEEstimator(D, sem_dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    sem_d = sem.to(dev)
    sync()
    t0 = time.perf_counter()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(samples)
        for s in range(0, samples, batch_size):
            idx = order[s:s + batch_size]
            xb = x_train[idx]
            f0 = encode(xb)
            xm = masked_views(xb, "official", k=15, drop=15, views=1, seed=step)[:, 0]
            f1 = encode(xm)
            mi, mi_m = model.mutual_information(f0, sem_d[y_train[idx].to(dev)], y_train[idx].to(dev), f1)
            loss = -mi + 0.5 * torch.clamp(0.1 - (mi - mi_m), min=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        with torch.no_grad():
            feats = torch.cat([encode(x_test[s:s + 64]) for s in range(0, test, 64)])
            model.scores(feats, sem_d)
    sync()
    official = time.perf_counter() - t0

    # stage one, once: full clip + W masked views per sample
    t0 = time.perf_counter()
    full = torch.cat([encode(x[s:s + 64]) for s in range(0, len(x), 64)]).cpu()
    masked = []
    for s in range(0, samples, 64):
        mv = masked_views(x_train[s:s + 64], "official", k=15, drop=15, views=views, seed=seed,
                          sample_index=np.arange(s, min(s + 64, samples)))
        n, w = mv.shape[:2]
        masked.append(encode(mv.reshape(n * w, *mv.shape[2:])).reshape(n, w, -1).cpu())
    masked = torch.cat(masked)
    sync()
    extract = time.perf_counter() - t0

    # stage two from the cache
    torch.manual_seed(seed)
    model = SMIEEstimator(D, sem_dim)
    test_feats = full[samples:].to(dev)
    t0 = time.perf_counter()
    train_method(model, TrainSet(full[:samples], masked, y_train, sem),
                 FitOptions(epochs=epochs, batch_size=batch_size, lr=1e-5, warmup=0, seed=seed, device=device),
                 lambda e, m: m.scores(test_feats, sem_d))
    sync()
    cached = time.perf_counter() - t0
    return dict(official=official, extract=extract, cached=cached, ratio=official / cached,
                ratio_with_extract=official / (cached + extract), samples=samples, epochs=epochs, device=device,
                heap=heap, cpu_matmul=matmul_backend(), threads=torch.get_num_threads())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--test", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--heap", default="keep", choices=("keep", "system"), help="the process's allocator (both paths)")
    a = p.parse_args(argv)
    r = run_bench(a.samples, a.test, a.epochs, a.batch_size, views=a.views, device=a.device, seed=a.seed,
                  heap=a.heap)
    print(f"{r['samples']} training samples, {r['epochs']} epochs, device {r['device']}, {r['threads']} threads, "
          f"cpu matmul {r['cpu_matmul']}, heap {r['heap']}")
    print(f"  official (GCN at every step): {r['official']:8.2f} s")
    print(f"  cached estimator experiment:  {r['cached']:8.2f} s   speed-up {r['ratio']:.0f}x")
    print(f"  one-off extraction:           {r['extract']:8.2f} s   "
          f"(speed-up incl. extraction {r['ratio_with_extract']:.1f}x)")
    if a.json:
        import json

        with open(a.json, "w") as fh:
            json.dump(r, fh, indent=2)
    return r


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
