"""SynSE-layout feature folders of full NTU size, imported: the inputs ``smie reproduce`` runs on, without NTU.

Writes ``shift_5_r`` + ``shift_val_5_r`` (or another SynSE split's) with the exact file layout and NTU
cross-subject sizes (55/5: about 36,700 training rows of 256-d, 16,500 test rows, ``*_out.npy`` scores; the
validation folder about 31,400 / 1,400 / 2,000 rows) via ``smie.pipeline.visual.synse_synthetic``, then runs
``smie import-features`` and ``smie import-text-features`` (the class vectors the features follow; with
``--semantics`` a published text-feature file, e.g. MSF's ``text_feats/ViT-B-32/lb_60.npy``, so that the
synthetic features follow real class semantics). Prints rows, file and cache sizes, seconds and peak RSS per
step, and the load average before and after, so the figures can be read against it.

    OMP_NUM_THREADS=1 python bench/synse_layout.py --dir /tmp/synse-bench
    OMP_NUM_THREADS=1 python bench/synse_layout.py --split synse:ntu120:96/24 \\
        --semantics ../shared/refdata/MSF-GZSSAR/text_feats/ViT-B-32/lb_120.npy
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.pipeline.semantic.import_text_features import ImportTextConfig, import_text_features  # noqa: E402
from smie.pipeline.visual.import_features import ImportFeaturesConfig, import_features  # noqa: E402
from smie.pipeline.visual.synse_synthetic import SynseLayout, write_synse_layout  # noqa: E402


def _mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="synse:ntu60:55/5")
    ap.add_argument("--dir", type=Path, default=None, help="Work directory (default: a temporary one).")
    ap.add_argument("--semantics", type=Path, default=None, help="(K, E) .npy of class vectors to follow.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="synse-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}; work directory {root}")
    sem = np.load(args.semantics) if args.semantics else None
    t0 = time.perf_counter()
    paths = write_synse_layout(root, SynseLayout(split=args.split, seed=args.seed), sem)
    t1 = time.perf_counter()
    rows = {p.name: len(np.load(p, mmap_mode="r")) for p in sorted(paths["main"].glob("*.npy"))
            if not p.name.endswith(("_label.npy", "_out.npy"))}
    print(f"wrote {paths['main'].name} {rows} and {paths['validation'].name} "
          f"({_mb(paths['main']) + _mb(paths['validation']):.0f} MB of .npy) in {t1 - t0:.1f} s")
    res = import_features(ImportFeaturesConfig(folder=paths["main"], split=args.split, out=root / "visual.h5"))
    t2 = time.perf_counter()
    print(f"import-features: {res.num_samples} rows {res.partitions}, validation set {res.validation_rows} rows; "
          f"{_mb(res.path):.0f} MB cache in {t2 - t1:.1f} s (peak RSS {_peak_mb():.0f} MB)")
    for note in res.notes:
        print(f"  note: {note}")
    dataset = args.split.split(":")[1]
    text = import_text_features(ImportTextConfig(format="npy", out=root / "text.h5", dataset=dataset,
                                                 files=(("label", paths["semantics"]),),
                                                 encoder="synthetic class vectors (bench/synse_layout.py)"))
    t3 = time.perf_counter()
    print(f"import-text-features: {text} in {t3 - t2:.2f} s")
    print(f"load average at end: {os.getloadavg()}")
    print(f"next: smie fit-baseline devise --visual {root / 'visual.h5'} --text {text} --out {root / 'devise'} --gzsl")


if __name__ == "__main__":
    main()
