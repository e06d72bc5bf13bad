"""The real-data benchmark: prepare a real skeleton set, then ``smie benchmark`` on it (all methods, K folds,
honest and optimistic protocols, 95 % CIs and paired tests), printing the table and the wall time per stage.

MSR Action3D from ``../shared/realdata`` by default (20 classes: 10 folds of 5 unseen); any other set through
``--format`` (a reader of ``smie prepare``, ``npz`` for sets without one) or an existing cache (``--skeletons``).
MSR Action3D: W. Li et al., CVPR Workshops 2010; used for research only, never redistributed.

    python bench/realdata.py --data ../shared/realdata/msr_action3d --out bench-out/msr
    python bench/realdata.py --skeletons my.h5 --out bench-out/mine --folds 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from smie.features.store import SmieError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/realdata/msr_action3d"))
    p.add_argument("--format", default="msr")
    p.add_argument("--skeletons", type=Path, default=None, help="an existing skeleton cache instead of --data")
    p.add_argument("--out", type=Path, default=Path("bench-out/msr"))
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--folds", type=int, default=None)
    p.add_argument("--unseen", type=int, default=None)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--methods", nargs="*", default=["all"])
    p.add_argument("--descriptions", type=Path, nargs="*", default=[])
    p.add_argument("--kinds", nargs="*", default=["label"])
    p.add_argument("--backbone-epochs", type=int, default=30)
    p.add_argument("--epochs-scale", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--only-folds", type=int, nargs="*", default=[], help="run these folds only (parallel runs)")
    args = p.parse_args(argv)
    from smie.pipeline.data.prepare import PrepareConfig, prepare
    from smie.pipeline.tools.benchmark import BenchmarkConfig, run_benchmark

    t0 = time.perf_counter()
    try:
        skel = args.skeletons
        if skel is None:
            skel = args.out / "skeletons.h5"
            if not skel.is_file():
                prepare(PrepareConfig(format=args.format, input=args.data, out=skel, num_frames=args.frames,
                                      max_bodies=1, skip_bad=True))
        table = run_benchmark(BenchmarkConfig(
            skeletons=skel, out=args.out, folds=args.folds, unseen=args.unseen, seeds=args.seeds,
            methods=tuple(args.methods), descriptions=tuple(args.descriptions), kinds=tuple(args.kinds),
            backbone_epochs=args.backbone_epochs, epochs_scale=args.epochs_scale, device=args.device,
            only_folds=tuple(args.only_folds)),
            log=lambda msg: print(f"[{time.perf_counter() - t0:7.0f} s] {msg}", flush=True))
    except SmieError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table.read_text())
    print(f"total wall time of this invocation: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
