"""NTU-120 scale on one machine: ``smie prepare`` over a synthetic raw NTU tree, then ``smie extract-visual``.

Writes ``--n`` (default 20,000) ``.skeleton`` files in the real text format with the reader's own writer
(``smie.pipeline.data.readers.ntu.write_skeleton_file``): NTU-style names ``SsssCcccPpppRrrrAaaa`` over the 120
actions (so the ntu120 class table applies), 25 joints, 1 body (2 for the mutual actions A050-A060, A106-A120),
frame counts log-normal around 70 clipped to 30-300 (as NTU's). Then it runs ``smie prepare --workers W`` as a
child process and reports files/s, peak RSS (the whole process tree, sampled from /proc, and the largest single
process from ``getrusage(RUSAGE_CHILDREN)``) and the cache size, extrapolated to NTU-120's 114,480 files with a
verdict for a 24 GB machine. Last, extract-visual (its pipeline function, which takes a shard) over one
shard of the cache (``--extract-shard``, default 0/20, the first twentieth) with a randomly initialised ST-GCN
checkpoint built by the project's ``save_checkpoint``, reporting sequences/s and peak RSS. The load average is printed at start and end, so the figures can be read against it.

    OMP_NUM_THREADS=1 python bench/ntu_scale.py                 # 20,000 files, 2 workers
    OMP_NUM_THREADS=1 python bench/ntu_scale.py --n 2000 --workers 1 --dir /tmp/ntu-bench
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.pipeline.data.readers.ntu import write_skeleton_file  # noqa: E402

NTU120_FILES = 114_480
MACHINE_GB = 24
MUTUAL = set(range(50, 61)) | set(range(106, 121))


def sample_name(i: int) -> str:
    """A unique NTU-120 style name for file ``i``: every action in turn, then performers, cameras, setups."""
    a, rest = i % 120 + 1, i // 120
    p, rest = rest % 106 + 1, rest // 106
    c, rest = rest % 3 + 1, rest // 3
    r, s = rest % 2 + 1, rest // 2 + 1
    return f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"


def sequence(i: int) -> np.ndarray:
    """(3, T, 25, M) smooth joint trajectories in metres (depth ~3 m) for file ``i``, seeded by ``i``."""
    rng = np.random.default_rng(i)
    T = int(np.clip(rng.lognormal(np.log(70), 0.5), 30, 300))
    M = 2 if i % 120 + 1 in MUTUAL else 1
    t = np.linspace(0, 1, T)[None, :, None, None]
    base = rng.normal(0, 0.3, (3, 1, 25, M)) + np.array([0.0, 0.0, 3.0])[:, None, None, None]
    base[0] += np.arange(M) * 0.8
    wave = 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + rng.normal(0, 1, (3, 1, 25, M)))
    return (base + wave).astype(np.float32)


def _write(args: tuple[Path, int, int]) -> None:
    d, start, stop = args
    for i in range(start, stop):
        write_skeleton_file(d / f"{sample_name(i)}.skeleton", sequence(i))


def write_tree(d: Path, n: int, workers: int) -> float:
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spans = [(d, a, min(a + 500, n)) for a in range(0, n, 500)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_write, spans, chunksize=1)
    return time.perf_counter() - t0


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 for processes that are gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as fh:
                stack += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


EXTRACT = """
import sys
from pathlib import Path
from smie.pipeline.visual.extract import ExtractConfig, extract_visual
cache, ckpt, out, rank, world = sys.argv[1:]
extract_visual(ExtractConfig(Path(cache), Path(ckpt), Path(out), device="cpu", batch_size=64,
                             shard=(int(rank), int(world))))
"""


def run_measured(args: list[str], env: dict) -> tuple[float, int, str]:
    """Run ``python ARGS`` (``-m smie ...`` or ``-c SCRIPT ...``); (seconds, peak tree RSS bytes, output tail)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"smie {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - t0, peak, out[-400:]


def gb(x: float) -> str:
    return f"{x / 2**30:.2f} GB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="raw .skeleton files to write")
    ap.add_argument("--workers", type=int, default=2, help="prepare --workers (and writer processes)")
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--extract-shard", default="0/20", help="RANK/WORLD slice of the cache to extract")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="ntu-scale-") as tmp:
        work = args.dir or Path(tmp)
        raw, cache = work / "raw", work / "skeletons.h5"
        secs = write_tree(raw, args.n, args.workers)
        raw_bytes = sum(f.stat().st_size for f in raw.iterdir())
        print(f"wrote {args.n} .skeleton files ({gb(raw_bytes)}) in {secs:.0f} s")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), TQDM_DISABLE="1")
        secs, peak, _ = run_measured(["-m", "smie", "prepare", "--format", "ntu", "--input", str(raw), "--out", str(cache),
                                      "--workers", str(args.workers), "--chunk-size", str(args.chunk_size),
                                      "--skip-bad"], env)
        single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        size = cache.stat().st_size
        scale = NTU120_FILES / args.n
        print(f"prepare --workers {args.workers}: {args.n} files in {secs:.1f} s = {args.n / secs:.0f} files/s; "
              f"peak RSS {gb(peak)} (process tree), {gb(single)} (largest single process, getrusage); "
              f"cache {gb(size)}")
        print(f"extrapolated to NTU-120 ({NTU120_FILES} files): prepare ~{secs * scale / 60:.0f} min, cache "
              f"~{gb(size * scale)}, raw ~{gb(raw_bytes * scale)}; peak RSS stays ~{gb(peak)} (chunked, not "
              f"N-bound)")
        print(f"a {MACHINE_GB} GB machine: prepare {'fits' if peak < MACHINE_GB * 2**30 else 'does NOT fit'} "
              f"(peak {gb(peak)}); the whole preprocessed set in memory ({gb(NTU120_FILES * 3 * 50 * 25 * 2 * 4)}, "
              f"read_skeletons) {'fits' if NTU120_FILES * 30_000 < MACHINE_GB * 2**30 else 'does not'}; "
              f"goal prepare peak < 2 GB: {'met' if peak < 2 * 2**30 else 'MISSED'}; 20,000 files < 10 min: "
              f"{'met' if secs * 20_000 / args.n < 600 else 'MISSED'}")
        rank, world = (int(x) for x in args.extract_shard.split("/"))
        ckpt = work / "backbone.pt"
        make_backbone(cache, ckpt)
        secs, peak, _ = run_measured(["-c", EXTRACT, str(cache), str(ckpt), str(work / "visual.h5"), str(rank),
                                      str(world)], env)
        import h5py

        with h5py.File(cache, "r") as f:
            n_seq = len(range(*slice(rank * len(f["labels"]) // world,
                                     (rank + 1) * len(f["labels"]) // world).indices(len(f["labels"]))))
        print(f"extract-visual (cpu, ST-GCN small, 4 masked views, shard {rank}/{world}): {n_seq} sequences in "
              f"{secs:.1f} s = {n_seq / secs:.1f} sequences/s; peak RSS {gb(peak)}; NTU-120 at this rate "
              f"~{NTU120_FILES / (n_seq / secs) / 3600:.1f} h on this CPU")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def make_backbone(cache: Path, ckpt: Path) -> None:
    """A randomly initialised ST-GCN checkpoint for ``cache`` through the project's ``save_checkpoint``."""
    import torch

    from smie.features.skeletons import read_skeleton_header
    from smie.features.store import file_sha256
    from smie.pipeline.data.splits import resolve_split
    from smie.pipeline.visual.backbones import build_backbone, save_checkpoint

    head = read_skeleton_header(cache)
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_backbone("stgcn", head.layout, "small"),
                    split=resolve_split("random:10:seed=0", len(head.class_names)),
                    partition={"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0},
                    class_names=head.class_names, num_frames=head.data.shape[2], skeleton_sha256=file_sha256(cache),
                    provenance={"bench": "ntu_scale"})


if __name__ == "__main__":
    main()
