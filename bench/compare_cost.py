"""Cost of the ``smie compare`` grid (9 methods x 3 folds x 1 seed), before and after the stage-two speed work,
side by side in one run, with a per-method, per-phase profile and the FLOP floor of the MLP work.

Caches: ``--benchmark DIR`` takes ``DIR/fold<i>/visual.h5`` and ``DIR/text.h5`` as ``smie benchmark`` writes
them (MSR Action3D from ``../shared``: never commit them); without it, synthetic caches of the same shapes
(20 classes, 567 samples, D 256, 2 masked views with a validation view, 384-d label/action/motion texts) are
written to a temporary directory with the project's own writers.

- ``before``: the grid with the code of ``--before`` (a git revision, checked out into a temporary worktree;
  default the last commit before the speed work), as it ran then (one process, torch's default threads);
  further ``--before`` revisions are timed the same way and shown beside it;
- ``after --jobs 1``: today's code, one process, one torch thread (what the algorithmic changes buy);
- ``after``: today's code with its default ``--jobs`` (one single-threaded process per core);
- with ``--ablate``: the ``--jobs 1`` grid with every CPU speed path of ``smie.pipeline.zsl.compute`` (``on``), and
  with each switched in turn (``matmul=onednn`` / ``matmul=torch``: oneDNN's private kernel or torch's own matmul,
  whichever ``auto`` did not take; ``fused_adam``; ``layer_norm``; ``split_first_layer``; ``heap=system``), all
  started at once as separate single-thread processes, so they share whatever else loads the machine: each
  path's wall-time ratio to ``on`` shows what it earns, with the 3-fold ZSL of each (the same to float rounding).

The profile sums, per method over the folds of the ``--jobs 1`` grid, the phases each run records in
``metrics.json`` (``timing``): validation and final phase, and inside them training steps, ``finalize`` and
per-epoch scoring; ``other`` is the run's remaining time (reading caches, writing the run directory and its
plots). The FLOP floor counts every matmul FLOP of one run per method on fold 0
(``torch.utils.flop_counter``), times the folds, over the measured single-thread matmul rate times the cores.

    python bench/compare_cost.py [--benchmark .dev/msr10] [--folds 3] [--before REV ...] [--skip-before]
        [--skip-j1] [--skip-parallel] [--ablate [--ablate-methods a,b]] [--no-flops]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smie.pipeline import registry

REPO = Path(__file__).resolve().parents[1]
BEFORE = "39965bc"
ABLATIONS = {"on": {}, "matmul=onednn": dict(matmul="onednn"), "matmul=torch": dict(matmul="torch"),
             "fused_adam=False": dict(fused_adam=False), "layer_norm=torch": dict(layer_norm="torch"),
             "split_first_layer=False": dict(split_first_layer=False), "heap=system": dict(heap="system")}
GRID = """
import dataclasses, json, sys, time
from pathlib import Path
from smie.pipeline.zsl.compare import CompareConfig, compare
args = json.loads(sys.argv[1])
fields = {f.name for f in dataclasses.fields(CompareConfig)}
extra = {"jobs": args["jobs"]} if "jobs" in fields else {}
if "compute" in fields:  # this script is the process's entry point: it sets the heap, as the CLI does
    from smie.pipeline.zsl.compute import Compute, apply_heap
    extra["compute"] = Compute(**args["compute"])
    apply_heap(extra["compute"])
t = time.perf_counter()
compare(CompareConfig(visual=tuple(Path(v) for v in args["visual"]), text=Path(args["text"]), out=Path(args["out"]),
                      methods=tuple(args["methods"]), device="cpu", **extra))
print("GRID_SECONDS", time.perf_counter() - t)
"""


def synthetic_caches(root: Path, folds: int, seed: int = 0) -> tuple[list[Path], Path]:
    """MSR-shaped caches: per fold a visual cache (567 x 256, 2 views, validation view) on the seeded split
    ``random:5:seed=i``; one text cache with kinds label, action, motion (K x 1 x 384)."""
    from smie.features.text import TextCache, TextKind, write_text
    from smie.features.visual import VisualCache, attach_validation, write_visual
    from smie.pipeline.data.partitions import assign_partitions
    from smie.pipeline.data.splits import resolve_splits

    K, N, D, E, W = 20, 567, 256, 384, 2
    rng = np.random.default_rng(seed)
    names = tuple(f"action {k}" for k in range(K))
    sem = rng.normal(size=(K, E))
    sem /= np.linalg.norm(sem, axis=1, keepdims=True)
    labels = np.arange(N) % K
    proj = rng.normal(size=(D, E)) / np.sqrt(E)
    visuals = []
    for fold in range(folds):
        split = resolve_splits(f"random:5:seed={fold}", K)[0]
        part = assign_partitions(labels, None, split, seed=0)
        feats = (sem[labels] @ proj.T * 3 + rng.normal(size=(N, D))).astype(np.float32)
        masked = (feats[:, None] + 0.3 * rng.normal(size=(N, W, D))).astype(np.float32)
        vc = VisualCache(feats, masked, labels, tuple(f"s{i:04d}" for i in range(N)), part, names,
                         dict(id=split.id, num_classes=K, seen=list(split.seen), unseen=list(split.unseen),
                              val_unseen=list(split.val_unseen)),
                         {"variant": "official", "k": 9, "drop": 9, "views": W, "seed": 0},
                         {"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0},
                         f"{fold:02d}" * 32, "stgcn", {}, "cd" * 32)
        path = write_visual(root / f"fold{fold}" / "visual.h5", vc, {"config": {"synthetic": True}})
        noisy = (feats + 0.5 * rng.normal(size=feats.shape)).astype(np.float32)
        view = dataclasses.replace(vc, features=noisy,
                                   masked=(noisy[:, None] + 0.3 * rng.normal(size=(N, W, D))).astype(np.float32),
                                   backbone_sha256=f"{fold + 50:02d}" * 32)
        attach_validation(path, view, [c for c in split.seen if c not in split.val_unseen], {"synthetic": True})
        visuals.append(path)
    kinds = {}
    for i, kind in enumerate(("label", "action", "motion")):
        emb = sem + 0.3 * i * rng.normal(size=sem.shape)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        kinds[kind] = TextKind(emb[:, None].astype(np.float32), tuple((f"{kind} of {n}",) for n in names),
                               np.ones(K, np.int32))
    text = root / "text.h5"
    write_text(text, TextCache(names, np.arange(K), kinds, "synthetic", "synthetic", "ef" * 32, E), {"config": {}})
    return visuals, text


def start_grid(pythonpath: Path, visuals, text, out: Path, methods, jobs: int | None, threads: int | None,
               compute: dict | None = None) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), HF_HUB_OFFLINE="1")
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    args = json.dumps(dict(visual=[str(v) for v in visuals], text=str(text), out=str(out), methods=list(methods),
                           jobs=jobs, compute=compute or {}))
    proc = subprocess.Popen([sys.executable, "-c", GRID, args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, time.perf_counter()


def finish_grid(label: str, started: tuple[subprocess.Popen, float], out: Path) -> dict:
    proc, t = started
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{label} grid failed:\n{err[-3000:]}")
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    print(f"{label:<28} wall {wall:7.1f} s ({len(runs)} runs)", flush=True)
    return dict(wall=wall, runs=runs, out=out)


def run_grid(label: str, pythonpath: Path, visuals, text, out: Path, methods, jobs: int | None,
             threads: int | None, compute: dict | None = None) -> dict:
    return finish_grid(label, start_grid(pythonpath, visuals, text, out, methods, jobs, threads, compute), out)


def profile(out: Path, methods) -> list[str]:
    keys = ("validation", "final", "steps", "finalize", "evaluate", "read_caches")
    lines = [f"{'method':<16}" + "".join(f"{k:>11}" for k in (*keys, "other", "total"))]
    for m in methods:
        sums = dict.fromkeys((*keys, "other", "total"), 0.0)
        for path in sorted((out / "runs" / m).glob("*/seed0/metrics.json")):
            timing = json.loads(path.read_text()).get("timing", {})
            for k in keys:
                sums[k] += timing.get(k, 0.0)
        import pandas as pd

        runs = pd.read_csv(out / "runs.csv")
        sums["total"] = float(runs[runs.method == m].seconds.sum())
        sums["other"] = sums["total"] - sums["validation"] - sums["final"] - sums["read_caches"]
        lines.append(f"{m:<16}" + "".join(f"{sums[k]:11.2f}" for k in (*keys, "other", "total")))
    return lines


def matmul_rate() -> dict[str, float]:
    """Single-thread float32 matmul GFLOP/s on 1024-wide operands (the MLPs' scale): torch's own ``@`` (MKL, the
    public path), stage two's :func:`smie.pipeline.zsl.compute.mm` (oneDNN's private kernel where available), and
    ``torch.bmm`` on 4 stacked products, what running 4 seeds of a model as one vectorised model would use."""
    import torch

    from smie.pipeline.zsl.compute import Compute, mm, using

    torch.set_num_threads(1)
    a, b = torch.randn(512, 1024), torch.randn(1024, 1024)
    sa, sb = torch.randn(4, 512, 1024), torch.randn(4, 1024, 1024)
    rates = {}
    for name, op, flops in (("torch", lambda: torch.mm(a, b), 1), ("smie", lambda: mm(a, b), 1),
                            ("torch bmm x4", lambda: torch.bmm(sa, sb), 4)):
        with using(Compute(matmul="onednn")):  # "smie": oneDNN's private kernel, whatever auto takes here
            for _ in range(3):
                op()
            t, reps = time.perf_counter(), 30
            for _ in range(reps):
                op()
        rates[name] = flops * 2 * 512 * 1024 * 1024 * reps / (time.perf_counter() - t) / 1e9
    return rates


def flops_per_run(visual: Path, text: Path, methods, work: Path) -> dict[str, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits
    from smie.pipeline.zsl.compute import Compute

    torch.set_num_threads(1)
    out = {}
    plain = Compute(matmul="torch")  # the counter knows aten's matmuls, not the oneDNN kernel's
    for m in methods:
        counter = FlopCounterMode(display=False)
        try:
            with counter:
                fit_splits(BaselineConfig(m, visual, text, work / m, gzsl=True, device="cpu", compute=plain))
        except RuntimeError as exc:  # the counter cannot follow ReViSE's double backward (autograd.grad)
            print(f"  {m}: FLOPs not countable ({str(exc).splitlines()[0][:80]}...)")
            continue
        out[m] = counter.get_total_flops()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmark", type=Path, default=None, help="smie benchmark directory with fold*/visual.h5")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(registry.METHODS), help="comma list (default: every registered "
                    "method); an older --before revision may not know the newer ones")
    ap.add_argument("--before", action="append", help=f"git revision of the 'before' code (default {BEFORE}; "
                    "repeat it to time later revisions too, with their own default jobs)")
    ap.add_argument("--skip-before", action="store_true")
    ap.add_argument("--skip-parallel", action="store_true", help="leave out the default-jobs grid")
    ap.add_argument("--skip-j1", action="store_true", help="leave out the --jobs 1 grid (and its profile)")
    ap.add_argument("--ablate", action="store_true", help="also the --jobs 1 grid with each speed path switched, "
                    "all at once")
    ap.add_argument("--ablate-methods", default=None, help="comma list for the --ablate grids (default: --methods)")
    ap.add_argument("--no-flops", action="store_true")
    args = ap.parse_args()
    methods = args.methods.split(",")
    print(f"load average at start: {os.getloadavg()}; cores: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory(prefix="compare-cost-") as tmp:
        tmp = Path(tmp)
        if args.benchmark is not None:
            visuals = [args.benchmark / f"fold{i}" / "visual.h5" for i in range(args.folds)]
            text = args.benchmark / "text.h5"
            print(f"caches: {args.benchmark} folds 0..{args.folds - 1}")
        else:
            visuals, text = synthetic_caches(tmp / "caches", args.folds)
            print(f"caches: synthetic, MSR-shaped, {args.folds} folds")
        results = {}
        for i, rev in enumerate([] if args.skip_before else args.before or [BEFORE]):
            tree, link = tmp / f"before-tree{i}", tmp / f"before-path{i}"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
            try:
                link.mkdir()
                (link / "smie").symlink_to(tree)
                results["before" if i == 0 else rev] = run_grid(f"before {rev}", link, visuals, text,
                                                                tmp / f"before{i}", methods, None, None)
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        here = tmp / "here-path"
        here.mkdir()
        (here / "smie").symlink_to(REPO)
        if not args.skip_j1:
            results["after-j1"] = run_grid("after --jobs 1", here, visuals, text, tmp / "after1", methods, 1, 1)
        if not args.skip_parallel:
            results["after"] = run_grid("after (default)", here, visuals, text, tmp / "after", methods, None, None)
        if args.ablate:
            ablate = args.ablate_methods.split(",") if args.ablate_methods else methods
            started = {name: start_grid(here, visuals, text, tmp / name, ablate, 1, 1, switch)
                       for name, switch in ABLATIONS.items()}
            for name in ABLATIONS:
                results[name] = finish_grid(f"--jobs 1, {name}", started[name], tmp / name)
        print("\nper method, seconds summed over folds:")
        print(f"{'method':<16}" + "".join(f"{k:>14}" for k in results) + f"{'ZSL ' + ' / '.join(results):>40}")
        for m in methods:
            secs = [r["runs"][r["runs"].method == m].seconds.sum() for r in results.values()]
            zsl = [100 * r["runs"][r["runs"].method == m].zsl.mean() for r in results.values()]
            print(f"{m:<16}" + "".join(f"{s:14.1f}" for s in secs) + f"{' / '.join(f'{z:.1f}' for z in zsl):>40}")
        if "after-j1" in results:
            print("\nprofile of the --jobs 1 grid (seconds summed over folds; other = read/write/plots):")
            print("\n".join(profile(results["after-j1"]["out"], methods)))
        walls = {k: r["wall"] for k, r in results.items()}
        if args.ablate:
            print("\nwhat each speed path earns: the grid with one switch changed, started together with 'on' "
                  "(every path as auto takes it), wall time and its ratio to 'on':")
            for name in ABLATIONS:
                steps = sum(json.loads(p.read_text()).get("timing", {}).get("steps", 0.0)
                            for p in (results[name]["out"] / "runs").glob("*/*/seed0/metrics.json"))
                print(f"  {name:<24} {walls[name]:7.1f} s = {walls[name] / walls['on']:.2f}x; training steps "
                      f"{steps:7.1f} s")
        if "before" in walls and "after" in walls and "after-j1" in walls:
            print(f"\nspeed-up: --jobs 1 {walls['before'] / walls['after-j1']:.2f}x, default jobs "
                  f"{walls['before'] / walls['after']:.2f}x (before {walls['before']:.0f} s, after "
                  f"{walls['after']:.0f} s)")
        rates, cores = matmul_rate(), len(os.sched_getaffinity(0))
        rate = max(rates["torch"], rates["smie"])
        print(f"\nsingle-thread float32 matmul: torch @ (public, MKL) {rates['torch']:.0f} GFLOP/s, oneDNN's private "
              f"kernel {rates['smie']:.0f} GFLOP/s (torch / oneDNN {rates['torch'] / rates['smie']:.2f}), torch.bmm "
              f"of 4 stacked products {rates['torch bmm x4']:.0f} GFLOP/s")
        if not args.no_flops and "after-j1" in results:
            flops = flops_per_run(visuals[0], text, methods, tmp / "flops")
            total = sum(flops.values()) * len(visuals)
            floor = total / (rate * 1e9 * cores)
            counted = results["after-j1"]["runs"]
            spent = counted[counted.method.isin(list(flops))].seconds.sum()
            print(f"FLOP floor of the {len(flops)} countable methods: {total / 1e12:.2f} TFLOP of matmuls over the "
                  f"grid; single-thread matmul {rate:.0f} GFLOP/s x {cores} cores -> {floor:.0f} s; their runs took "
                  f"{spent:.0f} s on one core ({spent / (total / (rate * 1e9)):.1f}x the one-core floor)")
            for m in methods:
                if m in flops:
                    secs = counted[counted.method == m].seconds.sum()
                    print(f"  {m:<16} {flops[m] / 1e9:9.1f} GFLOP per run, one-core floor "
                          f"{flops[m] * len(visuals) / (rate * 1e9):6.1f} s, measured {secs:6.1f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
