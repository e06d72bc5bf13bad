"""Running the runs of a ``smie compare`` grid: in worker processes when cores allow, each resumable.

Each (method, split, seed) is one ``fit-baseline`` run (:func:`smie.pipeline.zsl.baselines.run.fit_splits`: same
caches, same protocol, same run directory) under ``out/runs/<method>/<split>/seed<k>``. Runs are independent and
seeded, so they go to ``jobs`` spawned worker processes, and every run trains with one torch thread wherever it
runs: the numbers are the same for any ``jobs`` (``tests/test_stage2_fast.py``). A worker keeps the caches it
read in memory (:func:`smie.pipeline.zsl.experiment.load_caches`) for the next run on the same fold.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from smie.features.store import SmieError

RUN_SECONDS = {"devise": 1.3, "relationnet": 2.5, "revise": 3.9, "jpose": 2.0, "cadavae": 8.9, "synse": 5.1,
               "msf": 6.4, "smie": 6.2, "smie-notemporal": 4.8}
"""Seconds of one run on an MSR fold (``bench/compare_cost.py``'s ``--jobs 1`` profile, docs/performance.md), by
registered method name (``tests/test_stage2_fast.py`` checks every key is registered). They only order the queue:
the longest runs start first, so no worker is left with a long run while the others idle at the end. A method not
listed (``smie-fusion``, which validates several settings, or a new one) goes first."""


def longest_first(items: list[tuple]) -> list[int]:
    """Positions of grid ``items`` (method first) in the order to start them: by :data:`RUN_SECONDS`, largest
    first (a method not listed first of all), ties in grid order."""
    return sorted(range(len(items)), key=lambda i: -RUN_SECONDS.get(items[i][0], float("inf")))


def grid_jobs(jobs: int | None, device: str, n_runs: int) -> int:
    """Worker processes for a grid: ``jobs``, or by default the CPU cores this process may use (one on a GPU,
    which the runs would share), never more than the runs."""
    if jobs is not None and jobs < 1:
        raise SmieError(f"--jobs must be >= 1, got {jobs}")
    if jobs is None:
        jobs = 1 if device not in ("auto", "cpu") or _has_cuda(device) else len(os.sched_getaffinity(0))
    return max(1, min(jobs, n_runs))


def _has_cuda(device: str) -> bool:
    from smie.pipeline.device import resolve_device

    return resolve_device(device).type != "cpu"


def run_grid(tasks: list[tuple], jobs: int, finished=None) -> list[dict]:
    """Results of :func:`run_one` for every task, in task order, on ``jobs`` worker processes (spawned, one
    torch thread each, the longest runs queued first: :func:`longest_first`) or in this process when
    ``jobs == 1``; ``finished(result)`` is called as each run ends
    (to record it for a resume). Every run trains with one torch thread either way, so the numbers do not
    depend on ``jobs``."""
    finished = finished or (lambda res: None)
    if jobs == 1:
        from smie.pipeline.zsl.runner import CacheStore

        caches, results = CacheStore(), []
        for task in tasks:
            results.append(run_one(*task, caches=caches))
            finished(results[-1])
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=worker_init,
                             initargs=(os.getpid(), tasks[0][0].compute)) as pool:
        futures = {i: pool.submit(_in_worker, *tasks[i]) for i in longest_first([task[1:] for task in tasks])}
        for future in as_completed(futures.values()):
            finished(future.result())
        return [futures[i].result() for i in range(len(tasks))]


def run_one(cfg, method: str, visual: Path, spec: str | None, split_id: str, seed: int,
            reuse: bool = False, caches=None) -> dict:
    """One (method, split, seed) run of the grid of ``cfg`` (a ``CompareConfig``) as a ``runs.csv`` row plus its
    directory (``run``, relative to ``cfg.out``) and whether it ran now (``fresh``; with ``reuse`` a finished run
    directory is read instead), or ``{"note": why}`` when the text cache lacks the method's semantic kinds.
    ``caches``: the process's :class:`~smie.pipeline.zsl.runner.CacheStore`."""
    import torch

    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits
    from smie.pipeline.zsl.results import row
    from smie.pipeline.zsl.runner import split_slug

    rel = Path("runs") / method / split_slug(split_id) / f"seed{seed}"
    run = Path(cfg.out) / rel
    fresh = not (reuse and (run / "metrics.json").is_file() and (run / "config.json").is_file())
    start = time.perf_counter()
    if fresh:
        run_cfg = BaselineConfig(method, visual, Path(cfg.text), run, kinds=tuple(cfg.kinds),
                                 split=(spec,) if spec else (), batch_size=cfg.batch_size, gzsl=cfg.gzsl,
                                 device=cfg.device, seed=seed, val_features=cfg.val_features, compute=cfg.compute,
                                 budget=cfg.budget)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fit_splits(run_cfg, cfg.epochs_scale, caches)
        except SmieError as exc:
            if "has no kind" not in str(exc):
                raise
            return {"note": str(exc)}
        finally:
            torch.set_num_threads(threads)
    metrics = json.loads((run / "metrics.json").read_text())
    used = json.loads((run / "config.json").read_text())
    return dict(method=method, split=split_id, seed=seed, seconds=time.perf_counter() - start, run=str(rel),
                fresh=fresh, kinds="+".join(used["kinds_used"]), epochs=used["epochs_used"],
                **row(metrics))


_WORKER: dict = {}
"""A worker process's own state, set by :func:`worker_init`: its ``caches`` (a ``CacheStore``)."""


def _in_worker(*task) -> dict:
    return run_one(*task, caches=_WORKER["caches"])


def worker_init(parent: int, compute) -> None:
    """In each worker (its entry point): the heap of the grid's ``compute`` config, a cache store of its own, and
    exit as soon as the parent process is gone (a killed ``compare`` leaves no orphans that would run on, holding
    its output pipes)."""
    import threading

    from smie.pipeline.zsl.compute import apply_heap
    from smie.pipeline.zsl.runner import CacheStore

    apply_heap(compute)
    _WORKER["caches"] = CacheStore()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
