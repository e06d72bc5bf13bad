"""How far each `smie quickstart` stage is from its compute floor on this machine, from a finished work directory.

The quickstart's heavy stages are float32 training loops of fixed size: the ST-GCN backbone's pretraining
(epochs x ceil(training samples / batch) steps), SMIE's and smie-fusion's step budget (both phases:
``budget.steps`` each, :mod:`smie.pipeline.zsl.budget`). For each this script builds the same module at the
same shapes, counts the FLOPs of one training step (``torch.utils.flop_counter``: forward + backward) and times
the step alone (forward, backward, Adam) at the current torch thread count. It prints, per stage, the steps the
quickstart ran, GFLOP per step, the isolated step's GFLOP/s beside a large matrix product's (about the best this
CPU does), the floor = steps x isolated step time, and what the quickstart took (its ``quickstart-state.json``).

A stage near its floor has no waste left to remove: it goes faster only with fewer steps (the method's real
budget, which the quickstart keeps) or a faster machine. Usage::

    smie quickstart --workdir /tmp/qs            # once
    python bench/quickstart_floor.py /tmp/qs [--threads 2] [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def gemm_rate(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an (n, n) @ (n, n) float32 product: this CPU's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def timed_step(step, steps: int) -> tuple[float, float]:
    """(GFLOP of one step, seconds per step) of a zero-argument training step."""
    from smie.pipeline.zsl.compute import Compute, using

    for _ in range(3):
        step()
    with using(Compute(matmul="torch")), FlopCounterMode(display=False) as counter:
        step()  # the counter sees aten's matmuls, not the oneDNN kernel --cpu-matmul may choose
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return counter.get_total_flops() / 1e9, (time.perf_counter() - t0) / steps


def stage_two_step(run: Path):
    """One training step of a finished run's method (its module and options, rebuilt by ``load_run``, fresh
    weights are not needed for a cost) on random tensors of its shapes, masked views included, with the
    method's own optimiser at the run's learning rate; also the step count of the run's budget."""
    from smie.pipeline.zsl.method import Batch
    from smie.pipeline.zsl.rundir import load_run

    torch.manual_seed(0)
    model, info = load_run(run)
    model.train()
    budget = info["metrics"]["budget"]
    opt = model.optimizer(budget["lr"])
    batch = info["config"].get("batch_size_used") or info["config"]["batch_size"]
    classes = len(info["split"]["seen"])
    visual_dim, sem_dim = info["model_config"]["visual_dim"], info["model_config"]["sem_dim"]
    b = Batch(torch.randn(batch, visual_dim), torch.randn(batch, visual_dim), torch.randint(classes, (batch,)),
              torch.randn(classes, sem_dim))

    def step():
        opt.zero_grad(set_to_none=True)
        model.loss(b).backward()
        opt.step()
    return step, budget["steps"]


def backbone_step(path: Path, batch: int, classes: int):
    """One pretraining step of the quickstart's backbone (its architecture, input shape and a fresh head)."""
    from smie.pipeline.visual.backbones import load_backbone

    torch.manual_seed(0)
    net, info = load_backbone(path)
    net.train()
    head = torch.nn.Linear(info.feature_dim, classes)
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=1e-3)
    cfg = net.config
    x = torch.randn(batch, cfg["in_channels"], info.num_frames, net.A.shape[-1], cfg["num_person"])
    y = torch.randint(classes, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(head(net(x)), y).backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path, help="a finished `smie quickstart --workdir` directory")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per stage")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from smie.features.store import load_checkpoint_checked

    state = json.loads((args.workdir / "quickstart-state.json").read_text())
    ckpt = load_checkpoint_checked(args.workdir / "backbone.pt")
    prov = ckpt["provenance"]
    pre_cfg = prov["config"]
    pre_steps = pre_cfg["epochs"] * math.ceil(prov["train_samples"] / pre_cfg["batch_size"])
    rows = [("pretrain-backbone", pre_steps,
             backbone_step(args.workdir / "backbone.pt", pre_cfg["batch_size"], len(ckpt["head_classes"])),
             "epochs x ceil(train / batch); validation passes not counted")]
    for stage, run in (("fit-estimator", "smie"), ("fit-fusion", "smie-fusion")):
        step, steps = stage_two_step(args.workdir / "runs" / run)
        rows.append((stage, 2 * steps, step, f"{steps} steps x 2 phases (validation, final)"))
    peak = gemm_rate()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2048^3 matrix product: {peak:.0f} GFLOP/s")
    print(f"{'stage':<18} {'steps':>6} {'GFLOP/step':>10} {'GFLOP/s':>8} {'% of GEMM':>9} {'floor s':>8} "
          f"{'quickstart s':>12}  what the steps are")
    for stage, steps, step, note in rows:
        gflop, secs = timed_step(step, args.steps)
        took = state.get(stage, {}).get("seconds", float("nan"))
        print(f"{stage:<18} {steps:>6} {gflop:>10.3f} {gflop / secs:>8.0f} {100 * gflop / secs / peak:>8.0f}% "
              f"{steps * secs:>8.1f} {took:>12.1f}  {note}")
    rest = {k: v.get("seconds", 0.0) for k, v in state.items() if k not in {r[0] for r in rows}}
    print("other stages (quickstart s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(rest.items())))


if __name__ == "__main__":
    main()
