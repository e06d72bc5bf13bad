"""The standing parity check: smie's stage two against the official codes, run unchanged on this CPU.

Usage (the official checkouts are the user's, given by path; none of their code is copied into smie)::

    OMP_NUM_THREADS=1 python bench/parity/run.py --smie-repo /work/official/SMIE --msf-repo /work/official/MSF-GZSSAR \\
        --synse-repo /work/official/synse-zsl --cadavae-repo /work/official/CADA-VAE-PyTorch

For each method both sides start from the same weights (the official initialisation, mapped into smie's model),
see the same batches, masked views and noise draws, and are compared step by step in float64 and float32: loss,
gradients, parameters, schedule weights, then test scores and predictions (``table.py`` says how each row is
judged). Known deviations appear as DIFFERENT rows with their size; docs/fidelity.md lists them with file and
line on both sides. The defaults are short (a few minutes on two cores); the long versions of the issue's
measurements are ``--steps 900`` (SMIE), ``--cycles 5`` (MSF, SynSE), ``--scan-cycles 10`` (the SynSE-repo
CADA-VAE schedule over all 17,000 steps). Exits 1 when a row that should agree does not (MISMATCH).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

EXPECTED = {"smie": "fa41f1d", "msf": "e647095", "synse": "90f39a1", "cadavae": "26f0085"}
METHODS = ("smie", "msf", "synse", "cadavae")


def commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smie-repo", type=Path, help="checkout of YujieOuO/SMIE")
    p.add_argument("--msf-repo", type=Path, help="checkout of EHZ9NIWI7/MSF-GZSSAR")
    p.add_argument("--synse-repo", type=Path, help="checkout of skelemoa/synse-zsl")
    p.add_argument("--cadavae-repo", type=Path, help="checkout of edgarschnfld/CADA-VAE-PyTorch")
    p.add_argument("--msf-text-feats", type=Path, default=REPO.parent / "shared/refdata/MSF-GZSSAR/text_feats",
                   help="MSF's released CLIP text features (ViT-B-32/{lb,ad,md}_60.npy); skipped when absent")
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of: " + ", ".join(METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smie-epochs", type=int, default=20, help="SMIE epochs of the official 100-epoch schedule")
    p.add_argument("--smie-train", type=int, default=128, help="SMIE training samples (batches of 128)")
    p.add_argument("--steps", type=int, help="SMIE steps over the whole 100-epoch schedule (sets --smie-epochs 100 "
                   "and --smie-train to 128 x steps/100); 900 is the issue's measurement")
    p.add_argument("--no-loop", action="store_true", help="SMIE: skip smie's own loop (train_method) against the code")
    p.add_argument("--loop-steps", type=int, default=300, help="MSF: steps of smie's own loop against the code fed "
                   "its batches (0: skip)")
    p.add_argument("--cycles", type=int, default=1, help="MSF and SynSE: float64 cycles of 1700 steps")
    p.add_argument("--f32-steps", type=int, default=300, help="MSF, SynSE: float32 steps (0: none)")
    p.add_argument("--clip-steps", type=int, default=100, help="MSF on the released CLIP texts: float64 steps")
    p.add_argument("--cada-steps", type=int, default=300, help="SynSE-repo CADA-VAE: float64 lockstep steps")
    p.add_argument("--scan-cycles", type=int, default=3, help="SynSE-repo CADA-VAE: cycles of its schedule scanned")
    p.add_argument("--cada-epochs", type=int, default=8, help="CADA-VAE paper code: epochs (one batch each)")
    p.add_argument("--dtypes", default="f64,f32", help="precisions to run: f64, f32 or both (float32 rows are "
                   "judged against a float64 run of the official code, which runs whenever f32 does)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    args = p.parse_args(argv)
    if args.steps is not None:
        args.smie_epochs, args.smie_train = 100, 128 * max(1, -(-args.steps // 100))
    return args


def run(args: argparse.Namespace) -> tuple[list, list[str]]:
    """Every requested method's rows, and the notes printed above the table."""
    import torch

    import smie_side as S
    from table import Row

    torch.set_num_threads(args.threads)
    f64, f32 = torch.float64, torch.float32
    dtypes = tuple({"f64": f64, "f32": f32}[d.strip()] for d in args.dtypes.split(",") if d.strip())
    if f32 not in dtypes:
        args.f32_steps, args.no_loop = 0, True
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    repos = {"smie": args.smie_repo, "msf": args.msf_repo, "synse": args.synse_repo, "cadavae": args.cadavae_repo}
    rows, notes = [], [f"torch {torch.__version__}, {args.threads} thread(s), smie float32 matmul: {S.MATMUL}, "
                       f"seed {args.seed}"]
    for m in methods:
        repo = repos[m]
        if repo is None or not Path(repo).is_dir():
            rows.append(Row(m.upper(), f"official checkout (--{m}-repo)", "-", f"not given or absent: {repo}", "SKIP"))
            continue
        got = commit(Path(repo))
        notes.append(f"{m}: {repo} @ {got}" + ("" if got == EXPECTED[m] else
                                                f"  (docs/fidelity.md cites {EXPECTED[m]}; line numbers may differ)"))
        started = time.perf_counter()
        if m == "smie":
            import smie_parity as P

            rows += P.run(repo, args.smie_epochs, args.smie_train, args.seed, dtypes)
            if not args.no_loop:
                rows += P.loop_rows(repo, args.seed, f32)
            notes.append(P.describe(args.smie_epochs, args.smie_train))
        elif m == "msf":
            import msf_parity as P

            rows += run_split(P.run, repo, args, texts=True)
            if args.loop_steps and "f64" in args.dtypes:
                rows += P.loop_rows(repo, args.seed, args.loop_steps)
            rows += P.gate_rows(repo, args.seed)
            notes.append(P.describe(args.cycles))
        elif m == "synse":
            import synse_parity as P

            rows += run_split(P.run, repo, args)
            notes.append(P.describe(args.cycles * 1700))
        elif m == "cadavae":
            import cadavae_parity as P

            rows += P.paper_rows(repo, args.seed, dtypes, args.cada_epochs)
            if args.synse_repo is not None and Path(args.synse_repo).is_dir():
                rows += P.synse_rows(args.synse_repo, args.seed, args.cada_steps, (f64,), args.scan_cycles)
            notes.append(P.describe(args.cada_epochs, args.cada_steps, args.scan_cycles))
        notes.append(f"  {m} took {time.perf_counter() - started:.0f} s")
    return rows, notes


def run_split(fn, repo, args, texts: bool = False) -> list:
    """A cycle method in float64 for ``--cycles`` cycles and in float32 for ``--f32-steps`` steps. The float32
    rows are judged against the official code's own float32 drift over the same steps, so the float64 reference
    of the float32 rows is a run of the same length (its rows are not printed twice)."""
    import torch

    kwargs = dict(text_feats=args.msf_text_feats, clip_steps=args.clip_steps) if texts else {}
    full = args.cycles and "f64" in args.dtypes
    rows = fn(repo, args.cycles * 1700, args.seed, (torch.float64,), **kwargs) if full else []
    if args.f32_steps:
        short = dict(text_feats=None if full else args.msf_text_feats, clip_steps=args.clip_steps) \
            if texts else {}
        more = fn(repo, args.f32_steps, args.seed, (torch.float64, torch.float32), **short)
        rows += [r for r in more if r.dtype == "f32"] if full else more
    return rows


def main(argv: list[str] | None = None) -> int:
    from table import render

    args = parse(argv)
    started = time.perf_counter()
    rows, notes = run(args)
    print("\n".join(notes))
    print()
    print(render(rows))
    bad = [r for r in rows if r.status == "MISMATCH"]
    print(f"\n{len(rows)} rows: " + ", ".join(f"{s} {sum(r.status == s for r in rows)}"
                                             for s in ("SAME", "DIFFERENT", "NOTE", "SKIP", "MISMATCH")))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
