"""smie's backbones against the official module definitions, on CPU: the same weights, the same input, the features.

For each published format of ``smie import-backbone`` the official model is built from its own checkout under
``/work/official`` (or ``--official``): kchengiva/Shift-GCN ``model/shift_gcn.py``, yysijie/st-gcn
``net/st_gcn.py``, YujieOuO/SMIE ``module/gcn/st_gcn.py``. Its weights are drawn at random (BatchNorm statistics
and Shift-GCN's learnt shifts included, so every path of the forward is exercised), saved in that code's
checkpoint format, imported with ``smie import-backbone``, and both networks embed the same random batch. Printed:
the largest absolute and relative difference of the pooled features and of the classifier's seen-class scores.

Shift-GCN's temporal shift is a CUDA extension. In its place this file runs :class:`ReferenceShift`, a pure-torch
transcription of the extension's forward kernel (``model/Temporal_shift/cuda/shift_cuda_kernel.cu``,
``shift_cuda_forward_kernel``, and ``shift.py``): output row ``h`` of channel ``c`` samples the input bilinearly at
(``h * stride + ypos[c]`` (+0.5 when strided), ``w + xpos[c]``), zero outside, ``T // stride`` rows. It lives here,
in the bench, not in smie. The official models are also built on CPU with two shims: their ``device='cuda'``
parameter constructors and NumPy's removed ``np.int`` alias (nothing else of their code is changed).

    python bench/parity/official_backbones.py
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

OFFICIAL = Path(__file__).resolve().parents[3] / "official"
SPLIT = "synse:ntu60:55/5"


class ReferenceShift(nn.Module):
    """The Shift-GCN CUDA extension's forward, literally, in torch (float32, as the kernel's ``scalar_t``)."""

    def __init__(self, channel: int, stride: int, init_scale: float = 3):
        super().__init__()
        self.stride = stride
        self.xpos = nn.Parameter(torch.zeros(channel).uniform_(-1e-8, 1e-8))
        self.ypos = nn.Parameter(torch.zeros(channel).uniform_(-init_scale, init_scale))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        N, C, H, W = inp.shape
        Ho = H // self.stride
        ypos = self.ypos + 0.5 if self.stride != 1 else self.ypos
        out = torch.zeros(N, C, Ho, W, dtype=inp.dtype)
        h = torch.arange(Ho) * self.stride
        w = torch.arange(W)
        for c in range(C):
            x, y = self.xpos[c], ypos[c]
            x1, y1 = int(torch.floor(x)), int(torch.floor(y))
            dx, dy = x - x1, y - y1

            def q(dh: int, dw: int) -> torch.Tensor:
                hh, ww = h + y1 + dh, w + x1 + dw
                valid = ((hh >= 0) & (hh < H))[:, None] & ((ww >= 0) & (ww < W))[None, :]
                return inp[:, c][:, hh.clamp(0, H - 1)][:, :, ww.clamp(0, W - 1)] * valid

            out[:, c] = (q(0, 0) * (1 - dx) * (1 - dy) + q(0, 1) * dx * (1 - dy) + q(1, 0) * (1 - dx) * dy
                         + q(1, 1) * dx * dy)
        return out


@contextlib.contextmanager
def official_code(root: Path, fake_shift: bool = False):
    """Import an official checkout's modules on CPU; undo every import, path and shim afterwards."""
    modules, path = set(sys.modules), list(sys.path)
    zeros, ones, had_int = torch.zeros, torch.ones, hasattr(np, "int")

    def cpu(fn):
        return lambda *a, **k: fn(*a, **{key: v for key, v in k.items() if not (key == "device" and v == "cuda")})

    torch.zeros, torch.ones = cpu(zeros), cpu(ones)
    np.int = int  # removed in NumPy 1.24; Shift-GCN's index arrays use it
    sys.path.insert(0, str(root))
    if fake_shift:
        pkg, mod = types.ModuleType("cuda"), types.ModuleType("cuda.shift")
        pkg.__path__, mod.Shift = [], ReferenceShift
        sys.modules.update({"cuda": pkg, "cuda.shift": mod})
    try:
        yield
    finally:
        torch.zeros, torch.ones = zeros, ones
        if not had_int:
            del np.int
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            del sys.modules[name]


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Weights, BatchNorm statistics and learnt shifts drawn at random (seeded), the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.is_floating_point():  # Shift-GCN's spatial shift indices are (frozen) parameters
                continue
            if name.endswith("xpos"):  # half the channels with a horizontal shift the kernel really applies
                p.copy_(torch.where(torch.arange(len(p)) % 2 == 0, torch.rand(len(p), generator=g) * 0.8 - 0.4,
                                    p))
            elif name.endswith("ypos"):
                p.copy_(torch.rand(len(p), generator=g) * 2 - 1)
            elif "edge_importance" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                scale = (1.0 / max(1, p[0].numel()) ** 0.5) if p.dim() > 1 else 0.1
                p.copy_(torch.randn(p.shape, generator=g) * scale)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


def official_model(fmt: str, root: Path, seed: int = 0):
    """(model, head module or None, forward returning pooled features): the official network of ``fmt``."""
    if fmt == "shiftgcn":
        with official_code(root / "Shift-GCN", fake_shift=True):
            from model.shift_gcn import Model

            model = Model(num_class=60, num_point=25, num_person=2, graph="graph.ntu_rgb_d.Graph",
                          graph_args={"labeling_mode": "spatial"})
        head = model.fc
    elif fmt == "stgcn":
        with official_code(root / "st-gcn"):
            from net.st_gcn import Model

            model = Model(in_channels=3, num_class=60, graph_args={"layout": "ntu-rgb+d", "strategy": "spatial"},
                          edge_importance_weighting=True, dropout=0.5)
        head = model.fcn
    else:
        with official_code(root / "SMIE"):
            from module.gcn.st_gcn import Model

            model = Model(in_channels=3, hidden_channels=16, hidden_dim=256, dropout=0.5, edge_importance_weighting=True,
                          graph_args={"layout": "ntu-rgb+d", "strategy": "spatial"})
        head = None
    _randomise(model, seed)

    def features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if head is None:
            return model(x), None
        seen = {}
        hook = head.register_forward_hook(lambda m, inp, out: seen.update(f=inp[0], y=out))
        with torch.no_grad():
            model(x)
        hook.remove()
        return seen["f"].reshape(len(x), -1), seen["y"].reshape(len(x), -1)

    return model, features


def compare(fmt: str, root: Path = OFFICIAL, frames: int = 20, seed: int = 0) -> dict:
    """Import the official model's weights with smie and embed one random batch with both; the differences."""
    from smie.pipeline.data.splits import resolve_split
    from smie.pipeline.visual.backbones import embed, load_backbone
    from smie.pipeline.visual.import_backbone import ImportBackboneConfig, import_backbone

    model, features = official_model(fmt, root, seed)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "official.pt"
        torch.save(OrderedDict((k, v.cpu()) for k, v in model.state_dict().items()), weights)  # as their code saves
        ours_path = import_backbone(ImportBackboneConfig(format=fmt, weights=weights, split=SPLIT,
                                                         out=Path(tmp) / "smie.pt", frames=frames))
        ours, info = load_backbone(ours_path)
    x = torch.randn(3, 3, frames, 25, 2, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        ref, ref_scores = features(x)
        got = embed(ours, x, torch.device("cpu"))
    out = {"format": fmt, "features": tuple(got.shape), "feature_max_abs": float((got - ref).abs().max()),
           "feature_max_rel": float((got - ref).abs().max() / ref.abs().max())}
    if ref_scores is not None:
        seen = list(resolve_split(SPLIT, 60).seen)
        head = info.head["state_dict"]
        scores = got @ head["weight"].T + head["bias"]
        out["score_max_abs"] = float((scores - ref_scores[:, seen]).abs().max())
        out["score_max_rel"] = float(out["score_max_abs"] / ref_scores[:, seen].abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", type=Path, default=OFFICIAL)
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'format':<12} {'features':<12} {'max |diff|':>12} {'max rel':>10} {'score |diff|':>13} {'score rel':>10}")
    for fmt in ("shiftgcn", "stgcn", "smie-stgcn"):
        r = compare(fmt, args.official, args.frames)
        print(f"{fmt:<12} {str(r['features']):<12} {r['feature_max_abs']:>12.2e} {r['feature_max_rel']:>10.2e} "
              f"{r.get('score_max_abs', float('nan')):>13.2e} {r.get('score_max_rel', float('nan')):>10.2e}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
