"""Time ``smie reproduce`` on a whole published table at NTU size, without NTU: synthetic SynSE-layout folders.

Writes ``shift_5_r`` + ``shift_val_5_r`` at the 55/5 size of SynSE's folders (about 36,700 training rows of
256-d; :mod:`smie.pipeline.visual.synse_synthetic`), one text cache holding every kind the table's methods read
(the class vectors the features follow, as ``label``, ``verb``, ``noun``, ``action``, ``motion``), then runs
:func:`smie.pipeline.tools.reproduce.reproduce` method by method and protocol by protocol, timing each run
(seconds, with the validation and final phases from its ``metrics.json``) and the whole table; with ``--epochs``
each run is also projected to the method's own budget by its optimiser steps. A method with only ZSL numbers
published trains once for both protocols (the published figure is the honest run's ``zsl.oracle``), so
``published`` costs nothing for it. Goals (issue 22):
every method of the table within 10 minutes on the 2-core CPU, SMIE's 100 epochs within 2 minutes.

The figures depend on the machine's load: the load average is printed before and after; read them with it.

    OMP_NUM_THREADS=1 python bench/reproduce_table.py --dir /tmp/repro-bench
    python bench/reproduce_table.py --dir /tmp/repro-bench --protocol honest --method smie   # one run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.pipeline import registry  # noqa: E402
from smie.pipeline.semantic.import_text_features import ImportTextConfig, import_text_features  # noqa: E402
from smie.pipeline.tools.reproduce import PROTOCOLS, ReproduceConfig, reproduce, table_methods  # noqa: E402
from smie.pipeline.visual.synse_synthetic import SynseLayout, write_synse_layout  # noqa: E402

KINDS = ("label", "verb", "noun", "action", "motion")


def own_steps(method: str, run_dir: Path) -> int:
    """Optimiser steps of ``method``'s own budget on the run's training set (both phases scale alike)."""
    from smie.pipeline.zsl.spec import Cycles, method_spec, plan_units

    spec = method_spec(method)
    n_train = json.loads((run_dir / "metrics.json").read_text())["counts"]["seen_train"]
    epochs, extra = plan_units(spec, n_train, spec.batch_size, None)
    steps_per_epoch = max(1, -(-n_train // spec.batch_size))
    return extra["cycles"] * extra["cycle_length"] if isinstance(spec.budget, Cycles) else epochs * steps_per_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default="synse-ntu60-55/5", choices=list(registry.TABLES))
    ap.add_argument("--dir", type=Path, default=None, help="Work directory (reused: folders and finished runs).")
    ap.add_argument("--method", action="append", default=None, help="Only these methods (repeatable).")
    ap.add_argument("--protocol", action="append", default=None, choices=list(PROTOCOLS))
    ap.add_argument("--epochs", type=int, default=None,
                    help="Every method's budget (default: its own). With it, each run's time is also projected to "
                         "the method's own budget from the optimiser steps (config.json steps_used).")
    args = ap.parse_args()
    table = registry.TABLES[args.table]
    root = args.dir or Path(tempfile.mkdtemp(prefix="repro-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}; torch threads {torch.get_num_threads()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; work directory {root}")
    t0 = time.perf_counter()
    main_folder = root / table.features
    if not (main_folder / "train.npy").is_file():
        write_synse_layout(root, SynseLayout(split=table.split))
    text = root / "text.h5"
    if not text.is_file():
        import_text_features(ImportTextConfig(format="npy", out=text, dataset=table.split.split(":")[1],
                                              files=tuple((k, root / "semantics.npy") for k in KINDS),
                                              encoder="synthetic class vectors (bench/reproduce_table.py)"))
    print(f"folders and text cache ready in {time.perf_counter() - t0:.1f} s")
    out = root / "out"
    methods = args.method or table_methods(table)
    protocols = tuple(args.protocol or PROTOCOLS)
    seconds: dict[str, float] = {}
    projected: dict[str, float] = {}
    t_all = time.perf_counter()
    for method in methods:  # both protocols in one call, as a user runs them (a ZSL-only method trains once)
        t = time.perf_counter()
        res = reproduce(ReproduceConfig(table=args.table, features=main_folder, text=(text,), out=out,
                                        methods=(method,), protocols=protocols, epochs=args.epochs))
        seconds[method] = time.perf_counter() - t
        row = next(r for r in res.rows if r["method"] == method)
        dirs = {p: Path(row[f"run_{p}"]) for p in protocols if (Path(row[f"run_{p}"]) / "metrics.json").is_file()}
        if args.epochs is not None:
            run_dir = next(iter(dirs.values()))
            projected[method] = seconds[method] * own_steps(row["run_as"], run_dir) / \
                json.loads((run_dir / "config.json").read_text())["steps_used"]
        phases = "; ".join(f"{p}: validation phase {t_['validation']:.1f} s, final phase {t_['final']:.1f} s"
                           for p, t_ in ((p, json.loads((d / "metrics.json").read_text())["timing"])
                                         for p, d in dirs.items()))
        print(f"{method:8s} {seconds[method]:7.1f} s  ({len(dirs)} training run(s) as {row['run_as']}; {phases}; "
              + ", ".join(f"ZSL {p} {row[f'ours_{p}']:.2f}%" for p in protocols) + ")", flush=True)
    total = time.perf_counter() - t_all
    if projected:
        print(f"projected to each method's own budget (x own steps / steps run, from --epochs {args.epochs}):")
        for method, value in projected.items():
            print(f"  {method:8s} {value:7.1f} s")
        print(f"  whole table, projected: {sum(projected.values()):.1f} s = {sum(projected.values()) / 60:.1f} min")
    print(f"whole table ({len(methods)} methods x {'+'.join(protocols)}, incl. import): {total:.1f} s "
          f"= {total / 60:.1f} min (goal: 10 min)")
    if "smie" in seconds:
        smie = projected.get("smie", seconds["smie"])
        how = "projected" if projected else "measured"
        print(f"SMIE's run ({how}; validation phase + final phase, two trainings of its budget): "
              f"{smie:.1f} s, {smie / 2:.1f} s a training (goal: one 100-epoch training within 120 s)")
    print(f"load average at end: {os.getloadavg()}")
    print(reproduce(ReproduceConfig(table=args.table, features=main_folder, text=(text,), out=out,
                                    methods=tuple(methods), protocols=protocols, epochs=args.epochs)).table)


if __name__ == "__main__":
    main()
