"""The Python half of ``bench/gpu_check.sh``: environment report, measured runs, CPU/GPU comparisons, summary.

Each subcommand prints what it found and, with ``--json``, writes it for the summary; a failed check exits 1.

- ``env``: Python, torch, CUDA, NCCL, the GPU, and where ``smie`` is imported from (must be this checkout).
- ``fit -- ARGS``: ``smie ARGS`` in this process (the CLI itself), timed, with the peak CUDA memory, and whether
  the training set fits in it (the whole cache on the device); reads the run's ``metrics.json``.
- ``compare-fits REF CAND``: two ``fit-estimator`` run directories of the same seed on two devices: per-epoch
  losses within ``LOSS_RTOL``, ZSL top-1 within ``ACC_ATOL``; the weights' relative difference is reported, not
  checked (Adam's normalised steps amplify float noise: oneDNN against torch's CPU matmul, 10 epochs, gave
  losses 2e-5, ZSL 0.002 and weights 9e-3 apart).
- ``compare-features REF CAND``: two visual caches of the same checkpoint and skeletons extracted on two devices
  (float32 on CPU, bf16 autocast on CUDA): same rows, features and masked views within ``FEATURE_RTOL`` relative
  (Frobenius), every sample's feature cosine at least ``FEATURE_COS``; the fraction of elements outside
  ``allclose(2e-2, 2e-2)`` (the bf16 tolerance of ``tests/test_pretrain_gpu.py``) is reported. (A CPU proxy,
  bf16 autocast against float32 on the CPU for a random-init ST-GCN small, gave 3e-3 and 0.99999.)
- ``ddp-smoke``: under ``torchrun``: a process group of the given backend (NCCL on CUDA), a DistributedDataParallel
  smie backbone, one bf16 training step and an all-reduce. smie's own training and extraction join a process
  group only when ``WORLD_SIZE`` > 1, which one GPU cannot give NCCL; this step is the NCCL check on one GPU.
- ``report WORK OUT``: ``OUT/summary.txt`` (PASS/FAIL per step and the headline figures) and ``OUT/figures.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]  # the checkout; smie must be installed from it (pip install -e .)

LOSS_RTOL = 1e-3  # per-epoch mean loss, relative: float32 on both devices, different kernels and summation order
ACC_ATOL = 0.02  # ZSL top-1: a few test samples near a tie may flip
FEATURE_RTOL = 2e-2  # ||cuda - cpu||_F / ||cpu||_F: bf16 keeps 8 significant bits (0.4 %) per operation
FEATURE_COS = 0.99  # every sample's feature vector points the same way


def _write(path: str | None, data: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON: {type(obj)}")


def cmd_env(a) -> int:
    import torch

    import smie

    info = dict(python=platform.python_version(), torch=torch.__version__, cuda_build=torch.version.cuda,
                cuda_available=torch.cuda.is_available(), smie=os.path.dirname(smie.__file__),
                host_cpus=os.cpu_count(), torch_threads=torch.get_num_threads())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_count=torch.cuda.device_count(), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                    bf16=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.version())
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as exc:  # NCCL missing from this build
            info["nccl"] = f"unavailable ({exc})"
    for k, v in info.items():
        print(f"{k}: {v}")
    _write(a.json, info)
    if Path(info["smie"]).resolve() != REPO:
        print(f"FAIL: smie is imported from {info['smie']}, not this checkout {REPO}")
        return 1
    if a.require_cuda and not info["cuda_available"]:
        print("FAIL: no CUDA device visible to torch")
        return 1
    return 0


def cmd_fit(a) -> int:
    import torch

    from smie.cli import main as smie_main

    cuda = torch.cuda.is_available() and any(x.startswith("cuda") for x in a.args)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    smie_main(list(a.args), standalone_mode=False)
    wall = time.perf_counter() - t0
    out = Path(a.args[a.args.index("--out") + 1])
    m = json.loads((out / "metrics.json").read_text())
    counts = m["counts"]
    cfg = json.loads((out / "config.json").read_text())
    res = dict(wall_s=wall, device=m["compute"]["device"], epochs=cfg.get("epochs"), counts=counts,
               zsl_acc=m["zsl"]["selected"]["acc"], zsl_last=m["zsl"]["last"]["acc"],
               selected_epoch=m["selection"]["epoch"], timing=m["timing"])
    import h5py

    with h5py.File(cfg["visual"], "r") as f:
        N, D = f["features"].shape
        W = f["masked"].shape[1]
    res.update(visual_shape=[N, D], views=W, trainset_bytes=counts["seen_train"] * (1 + W) * D * 4)
    if cuda:
        res["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
        res["cache_on_device"] = res["peak_cuda_bytes"] >= res["trainset_bytes"]
    print(json.dumps({k: v for k, v in res.items() if k != "timing"}, default=_jsonable))
    _write(a.json, res)
    chance = 1 / max(1, a.unseen)
    if a.unseen and not res["zsl_acc"] >= 2 * chance:
        print(f"FAIL: ZSL top-1 {res['zsl_acc']:.3f} is not above twice chance ({2 * chance:.3f}): it did not learn")
        return 1
    if cuda and not res["cache_on_device"]:
        print("FAIL: the peak CUDA memory is below the training set's size: the cache was not on the device")
        return 1
    return 0


def _curve_rdiff(ref, cand) -> float:
    """Max relative difference of two numeric sequences (NaNs must coincide); inf if their shapes differ."""
    r, c = np.asarray(ref, float), np.asarray(cand, float)
    if r.shape != c.shape or not np.array_equal(np.isnan(r), np.isnan(c)):
        return math.inf
    ok = ~np.isnan(r)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(r[ok] - c[ok]) / np.maximum(np.abs(r[ok]), 1e-8)))


def cmd_compare_fits(a) -> int:
    import torch

    ref, cand = (json.loads((Path(p) / "metrics.json").read_text()) for p in (a.ref, a.cand))
    curves = {k: _curve_rdiff(ref["curves"][k], cand["curves"][k]) for k in ("loss", "val_loss")}
    accs = {k: abs(ref["zsl"][k]["acc"] - cand["zsl"][k]["acc"]) for k in ("selected", "last")}
    acc_curves = {k: _curve_rdiff(ref["curves"][k], cand["curves"][k]) for k in ("val_acc", "test_acc")}
    sd = [torch.load(Path(p) / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
          for p in (a.ref, a.cand)]
    weights = max(float((sd[0][k].float() - sd[1][k].float()).norm() / sd[0][k].float().norm().clamp_min(1e-12))
                  for k in sd[0])
    res = dict(ref=str(a.ref), cand=str(a.cand), ref_device=ref["compute"]["device"],
               cand_device=cand["compute"]["device"], loss_rdiff=curves, zsl_acc_absdiff=accs,
               acc_curve_rdiff=acc_curves, weights_rdiff=weights,
               selected_epoch=[ref["selection"]["epoch"], cand["selection"]["epoch"]],
               zsl_acc=[ref["zsl"]["selected"]["acc"], cand["zsl"]["selected"]["acc"]],
               tolerance=dict(loss_rtol=LOSS_RTOL, acc_atol=ACC_ATOL))
    res["pass"] = max(curves.values()) <= LOSS_RTOL and max(accs.values()) <= ACC_ATOL
    print(json.dumps(res, default=_jsonable))
    _write(a.json, res)
    return 0 if res["pass"] else 1


def cmd_compare_features(a) -> int:
    from smie.features.visual import read_visual

    ref, cand = read_visual(a.ref), read_visual(a.cand)
    res = dict(ref=str(a.ref), cand=str(a.cand), rows=ref.num_samples, dim=ref.feature_dim, views=ref.views,
               tolerance=dict(rtol=FEATURE_RTOL, cos=FEATURE_COS),
               same_rows=bool(ref.sample_ids == cand.sample_ids and np.array_equal(ref.labels, cand.labels)
                              and np.array_equal(ref.partition, cand.partition)),
               devices=[ref.provenance.get("device"), cand.provenance.get("device")])
    ok = res["same_rows"]
    for name in ("features", "masked"):
        r = getattr(ref, name).reshape(-1, ref.feature_dim).astype(np.float64)
        c = getattr(cand, name).reshape(-1, ref.feature_dim).astype(np.float64)
        if r.shape != c.shape:
            res[name] = dict(error=f"shapes {r.shape} vs {c.shape}")
            ok = False
            continue
        rel = float(np.linalg.norm(c - r) / max(np.linalg.norm(r), 1e-12))
        norms = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
        cos = np.where(norms > 0, (r * c).sum(1) / np.maximum(norms, 1e-300), 1.0)
        outside = float(np.mean(~np.isclose(c, r, rtol=2e-2, atol=2e-2)))
        res[name] = dict(rel_err=rel, max_abs=float(np.max(np.abs(c - r))), cos_min=float(cos.min()),
                         frac_outside=outside)
        # masked views: the aggregate only, since a near-tie in a sequence's motion ranking may pick another
        # keyframe on the other device (a float32 reduction's last bit), which is not an error
        ok = ok and rel <= FEATURE_RTOL and (name == "masked" or cos.min() >= FEATURE_COS)
    res["pass"] = bool(ok)
    print(json.dumps(res, default=_jsonable))
    _write(a.json, res)
    return 0 if ok else 1


def cmd_ddp_smoke(a) -> int:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from smie.pipeline.visual.backbones import build_backbone
    from smie.pipeline.visual.pretrain_loop import DistEnv

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = torch.device("cuda", local) if a.backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    t0 = time.perf_counter()
    dist.init_process_group(a.backend, device_id=device if device.type == "cuda" else None)
    env = DistEnv(world, rank, device)
    torch.manual_seed(0)
    model = build_backbone("stgcn", "ntu-25", "small").to(device)
    head = torch.nn.Linear(model.feature_dim, 10).to(device)
    # DDP directly: smie's DistEnv.wrap leaves a world of 1 unwrapped
    ids = [local] if device.type == "cuda" else None
    net = DistributedDataParallel(torch.nn.Sequential(model, head), device_ids=ids)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, 3, 50, 25, 2, device=device)
    y = torch.randint(0, 10, (a.batch,), device=device)
    with env.autocast():
        logits = net(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    opt.step()
    total = torch.ones(1, device=device) * (rank + 1)
    dist.all_reduce(total)
    dist.barrier()
    ok = float(total) == world * (world + 1) / 2 and math.isfinite(float(loss))
    res = dict(backend=dist.get_backend(), world=world, device=str(device), ddp=type(net).__name__,
               loss=float(loss), all_reduce=float(total), seconds=time.perf_counter() - t0)
    res["pass"] = ok
    dist.destroy_process_group()  # (DistEnv.close leaves a world of 1 alone)
    if rank == 0:
        print(json.dumps(res))
        _write(a.json, res)
    return 0 if ok else 1


def _fmt(v, spec=".1f") -> str:
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return "n/a"


def _headlines(fig: dict) -> list[str]:
    """The figures a reader wants first, one line each, from whatever steps produced them."""
    out = []
    env = fig.get("env", {})
    if env:
        out.append(f"device: {env.get('gpu', 'CPU')}; torch {env.get('torch')} (CUDA {env.get('cuda_build')}, "
                   f"NCCL {env.get('nccl', 'n/a')}); python {env.get('python')}")
    bb = fig.get("backbone-throughput", {})
    for name, r in bb.get("models", {}).items():
        out.append(f"backbone {name}: train {_fmt(r['train'])} seq/s, inference {_fmt(r['infer'])} seq/s "
                   f"at {tuple(bb.get('input', ()))}, {bb.get('autocast') or 'float32'}")
    ex = fig.get("extract-throughput", {})
    if ex:
        out.append(f"extract-visual: {_fmt(ex.get('seq_per_s'))} seq/s on {ex.get('n')} sequences "
                   f"{tuple(ex.get('input', ()))[1:]} (+{ex.get('views')} masked views each), forward "
                   f"{_fmt(100 * ex.get('forward_share', float('nan')))} % of wall time; backbone-only ceiling "
                   f"{_fmt(ex.get('ceiling_seq_per_s'))} seq/s")
    s2 = fig.get("stage2-cost", {})
    if s2:
        out.append(f"stage2_cost ({s2.get('samples')} samples, {s2.get('epochs')} epochs): official "
                   f"{_fmt(s2.get('official'), '.2f')} s, cached {_fmt(s2.get('cached'), '.2f')} s "
                   f"({_fmt(s2.get('ratio'), '.0f')}x), extraction {_fmt(s2.get('extract'), '.2f')} s")
    fit = fig.get("fit-ntu60", {})
    if fit:
        peak = fit.get("peak_cuda_bytes")
        out.append(f"fit-estimator {fit.get('epochs')} epochs on {tuple(fit.get('visual_shape', ()))} x "
                   f"{fit.get('views')} views: {_fmt(fit.get('wall_s'))} s on {fit.get('device')} "
                   f"(steps {_fmt(fit.get('timing', {}).get('steps'))} s), ZSL top-1 {_fmt(fit.get('zsl_acc'), '.3f')}"
                   + (f", peak CUDA memory {peak / 2**20:.0f} MiB for a {fit['trainset_bytes'] / 2**20:.0f} MiB "
                      f"training set" if peak else ""))
    tr = fig.get("torchrun-pipeline", {})
    if tr:
        out.append(f"torchrun x{tr.get('nproc')}: pretrain-backbone {_fmt(tr.get('pretrain_s'))} s "
                   f"({tr.get('epochs')} epochs, world {tr.get('world_size')}, device {tr.get('ckpt_device')}, "
                   f"seen-val acc {_fmt(tr.get('val_acc'), '.3f')}), extract-visual {_fmt(tr.get('extract_s'))} s "
                   f"on {tr.get('samples')} sequences")
    dd = fig.get("ddp-smoke", {})
    if dd:
        out.append(f"DDP smoke: backend {dd.get('backend')}, world {dd.get('world')}, {dd.get('device')}, "
                   f"all-reduce {dd.get('all_reduce')}")
    ab = fig.get("agree-backbone", {})
    if ab.get("features"):
        f, m = ab["features"], ab.get("masked", {})
        out.append(f"backbone features {ab.get('devices')}: rel err {_fmt(f.get('rel_err'), '.2e')} "
                   f"(masked {_fmt(m.get('rel_err'), '.2e')}), min cosine {_fmt(f.get('cos_min'), '.5f')}, "
                   f"{_fmt(100 * f.get('frac_outside', float('nan')), '.2f')} % of elements outside 2e-2")
    a2 = fig.get("agree-stage2", {})
    if a2:
        out.append(f"stage two {a2.get('ref_device')} vs {a2.get('cand_device')}: loss rel diff "
                   f"{_fmt(max(a2.get('loss_rdiff', {0: float('nan')}).values()), '.2e')}, ZSL "
                   f"{a2.get('zsl_acc')} (epochs {a2.get('selected_epoch')}), weights rel diff "
                   f"{_fmt(a2.get('weights_rdiff'), '.2e')}")
    return out


def cmd_report(a) -> int:
    work, out = Path(a.work), Path(a.out)
    steps = []
    for line in (work / "steps.tsv").read_text().splitlines():
        name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        steps.append(dict(step=name, status=status, seconds=float(seconds or 0), note=note))
    fig = {}
    for p in sorted((work / "fig").glob("*.json")):
        try:
            fig[p.stem] = json.loads(p.read_text())
        except ValueError as exc:
            fig[p.stem] = {"error": f"unreadable: {exc}"}
    kv = work / "fig" / "kv.tsv"
    if kv.exists():
        for line in kv.read_text().splitlines():
            step, key, value = line.split("\t", 2)
            try:
                value = json.loads(value)
            except ValueError:
                pass
            fig.setdefault(step, {})[key] = value
    meta = dict(mode=a.mode, total_s=a.total, started=a.started, commit=a.commit)
    passed = sum(s["status"] == "PASS" for s in steps)
    lines = [f"smie GPU check ({a.mode}), commit {a.commit}, started {a.started}",
             f"{passed} of {len(steps)} steps passed; total {a.total:.0f} s", ""]
    lines += [f"{s['status']:<5} {s['step']:<20} {s['seconds']:7.1f} s  {s['note']}" for s in steps]
    lines += ["", "figures:"] + [f"  {h}" for h in _headlines(fig)]
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    (out / "figures.json").write_text(json.dumps(dict(meta=meta, steps=steps, figures=fig), indent=2,
                                                 default=_jsonable) + "\n")
    print(text, end="")
    return 0 if passed == len(steps) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("--require-cuda", action="store_true")
    p.add_argument("--json")
    p = sub.add_parser("fit")
    p.add_argument("--json")
    p.add_argument("--unseen", type=int, default=0, help="unseen classes; then ZSL must beat twice chance")
    p.add_argument("args", nargs=argparse.REMAINDER)
    for name in ("compare-fits", "compare-features"):
        p = sub.add_parser(name)
        p.add_argument("ref")
        p.add_argument("cand")
        p.add_argument("--json")
    p = sub.add_parser("ddp-smoke")
    p.add_argument("--backend", choices=("nccl", "gloo"), required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--json")
    p = sub.add_parser("report")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("--mode", default="gpu")
    p.add_argument("--total", type=float, default=0.0)
    p.add_argument("--started", default="")
    p.add_argument("--commit", default="")
    a = ap.parse_args(argv)
    if a.cmd == "fit" and a.args[:1] == ["--"]:
        a.args = a.args[1:]
    return {"env": cmd_env, "fit": cmd_fit, "compare-fits": cmd_compare_fits, "compare-features": cmd_compare_features,
            "ddp-smoke": cmd_ddp_smoke, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
