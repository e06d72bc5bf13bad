"""SMIE's training MI under different optimisation budgets, side by side (issue #24; docs/smie-study.md).

    python bench/smie_budget.py VISUAL TEXT [--compression 1 10 30 100] [--code-epochs] [--seed 0]

Trains SMIE's final phase (all seen classes, the cache's own split, main features) with the project's own loop
(:func:`smie.pipeline.zsl.fit.train_method`) under each budget of :func:`smie.pipeline.zsl.budget.plan_budget`:
``code-epochs`` (100 epochs as the code counts them, lr 1e-5) and ``paper-steps`` compressed at most ``c`` times
(``c = 1``: the paper's 28,700 steps at 1e-5, slow on a CPU). At 20 evenly spaced points of each run it prints the
global mutual information (JSD estimate) on a fixed probe batch of training rows (-log 4 = -1.386 for an untrained
critic, higher is better) and the unseen-class test ZSL top-1, then each run's steps, rate and seconds (taken on
whatever else the machine is running: compare the columns of one run, not runs of different days).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from smie.features.text import read_text
from smie.features.visual import read_visual
from smie.pipeline.data.partitions import SEEN_TRAIN, UNSEEN_TEST
from smie.pipeline.zsl.budget import NTU60_55_5_ROWS, plan_budget
from smie.pipeline.zsl.estimator import SPEC
from smie.pipeline.zsl.fit import FitOptions, semantic_matrix, train_method
from smie.pipeline.zsl.method import TrainSet

POINTS = 20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("visual")
    p.add_argument("text")
    p.add_argument("--compression", type=float, nargs="*", default=[10.0, 30.0, 100.0])
    p.add_argument("--no-code-epochs", action="store_true", help="Leave out the code-epochs run.")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    vc, tc = read_visual(a.visual), read_text(a.text)
    sem = torch.from_numpy(semantic_matrix(tc, ("label",)))
    seen, unseen = list(vc.split["seen"]), list(vc.split["unseen"])
    labels, part = np.asarray(vc.labels), np.asarray(vc.partition)
    tr = np.flatnonzero(np.isin(labels, seen) & (part == SEEN_TRAIN))
    te = np.flatnonzero(np.isin(labels, unseen) & (part == UNSEEN_TEST))
    col = {c: i for i, c in enumerate(seen)}
    masked = torch.from_numpy(vc.masked[tr]) if vc.masked.ndim == 3 and vc.masked.shape[1] else None
    train = TrainSet(torch.from_numpy(vc.features[tr]), masked,
                     torch.tensor([col[int(c)] for c in labels[tr]]), sem[seen], tuple(seen))
    probe = torch.randperm(len(tr), generator=torch.Generator().manual_seed(123))[:512]
    test_v = torch.from_numpy(vc.features[te])
    test_y = np.array([unseen.index(int(c)) for c in labels[te]])
    runs = [("code-epochs", 1.0)] * (not a.no_code_epochs) + [("paper-steps", c) for c in a.compression]
    table, facts = {}, []
    for mode, c in runs:
        b = plan_budget(SPEC.lr, 100, len(tr), SPEC.batch_size, mode, NTU60_55_5_ROWS, c)
        opts = FitOptions(epochs=POINTS, batch_size=SPEC.batch_size, lr=b.lr, warmup=0, steps=b.steps,
                          warmup_share=0.15, seed=a.seed, device="cpu")
        torch.manual_seed(a.seed)
        model = SPEC.build(train.visual.shape[1], sem.shape[1])
        rows = []

        def on_evaluate(unit, m):
            mi, _ = m.mutual_information(train.visual[probe], train.class_sem, train.labels[probe], None,
                                         sem_index=train.labels[probe])
            acc = float((m.scores(test_v, sem[unseen]).numpy().argmax(1) == test_y).mean())
            rows.append((float(mi), acc))

        started = time.perf_counter()
        train_method(model, train, opts, on_evaluate)
        name = f"{mode} c={c:g}" if mode == "paper-steps" else mode
        table[name] = rows
        facts.append(f"{name:22s} {b.steps:6d} steps at lr {b.lr:.3g} (compression {b.compression:.1f}): "
                     f"{time.perf_counter() - started:.1f} s")
    print(f"{a.visual}: {len(tr)} training rows; global MI on a probe batch / unseen test ZSL top-1, "
          f"at {POINTS} evenly spaced points of each run (MI -1.386 = untrained)")
    print("point " + " ".join(f"{n:>22s}" for n in table))
    for i in range(POINTS):
        print(f"{i + 1:5d} " + " ".join(f"{r[i][0]:>14.3f} / {r[i][1]:.3f}" if i < len(r) else " " * 22
                                      for r in table.values()))
    print("\n".join(facts))


if __name__ == "__main__":
    main()
