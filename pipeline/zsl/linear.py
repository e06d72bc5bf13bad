"""Stage two's dense layers on CPU through oneDNN: the same float32 products, about twice as fast here.

PyTorch computes a float32 ``nn.Linear`` or ``@`` on CPU with MKL's GEMM, which on AMD processors runs its AVX2
path: ~100 GFLOP/s on one core of the project's machine, where oneDNN, also inside every PyTorch CPU build,
reaches ~200 GFLOP/s with AVX-512 on the same shapes (``bench/compare_cost.py`` prints both). Stage two is
mostly such products (``docs/performance.md``), so :class:`Linear` (a drop-in ``nn.Linear``: same parameters,
initialisation and ``state_dict``) and :func:`mm` send them, forward and backward, to oneDNN's inner-product
kernel (``torch.ops.mkldnn._linear_pointwise``). It is IEEE float32 throughout, with no reduced-precision
shortcut; only the summation order differs from MKL's, so results agree to float rounding
(``tests/test_stage2_fast.py``). Backward passes use the same kernel and stay differentiable, so ReViSE's
double backward works.

Where the kernel is missing, on other devices and dtypes, or with ``SMIE_MATMUL=torch`` in the environment,
everything falls back to ``torch.nn.functional.linear``. :func:`backend` says which path a process uses; every
run records it in ``metrics.json`` (``timing.matmul``).
"""
from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("auto", "onednn", "torch")
_chosen: dict[str, str] = {}  # SMIE_MATMUL value -> backend
_kernel_ok: list[bool] = []  # the self-check's verdict, once per process


def _kernel():
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None) if hasattr(torch.ops, "mkldnn") else None


def backend() -> str:
    """``onednn`` or ``torch``: the path of CPU float32 products in this process. ``SMIE_MATMUL`` (``auto``,
    the default, ``onednn`` or ``torch``) chooses; ``auto`` takes oneDNN when its kernel exists and passes a
    check against ``torch.nn.functional.linear`` on first use."""
    choice = os.environ.get("SMIE_MATMUL", "auto")
    if choice not in _chosen:
        _chosen[choice] = _resolve(choice.strip().lower() or "auto")
    return _chosen[choice]


def _resolve(choice: str) -> str:
    if choice not in BACKENDS:
        raise ValueError(f"SMIE_MATMUL must be one of {', '.join(BACKENDS)}, got {choice!r}")
    if choice == "torch":
        return "torch"
    if not _kernel_ok:
        _kernel_ok.append(_self_check())
    if not _kernel_ok[0] and choice == "onednn":
        warnings.warn("SMIE_MATMUL=onednn: the oneDNN kernel is missing or disagrees with torch; using torch")
    return "onednn" if _kernel_ok[0] else "torch"


def _self_check() -> bool:
    kernel = _kernel()
    if kernel is None:
        return False
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(7, 33, generator=g), torch.randn(5, 33, generator=g), torch.randn(5, generator=g)
    try:
        got = kernel(x.t().contiguous().t(), w, b, "none", [], "")
    except (RuntimeError, TypeError):
        return False
    return bool(torch.allclose(got, F.linear(x, w, b), atol=1e-4, rtol=1e-4))


class _OneDNNLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` for 2-D float32 CPU tensors; the backward products go through :func:`linear`
    again, so they are differentiable too."""

    @staticmethod
    def forward(x, weight, bias):
        return _kernel()(x, weight, bias, "none", [], "")

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx = linear(grad, weight.t()) if ctx.needs_input_grad[0] else None
        gw = linear(grad.t(), x.t()) if ctx.needs_input_grad[1] else None
        gb = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


MIN_MACS = 1 << 22
"""Products smaller than this many multiply-adds stay with torch: below it the autograd node in Python costs
more than oneDNN saves."""


def _routable(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if x.dim() < 1 or weight.dim() != 2 or x.shape[-1] != weight.shape[-1] or x.numel() * weight.shape[0] < MIN_MACS:
        return False
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and backend() == "onednn"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.nn.functional.linear``: x (..., in), weight (out, in), bias (out,) or None -> (..., out)."""
    if not _routable(x, weight, bias):
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    out = _OneDNNLinear.apply(_dense(x.reshape(-1, x.shape[-1])), _dense(weight), bias)
    return out.reshape(*lead, weight.shape[0])


def _dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` (2-D) if it is row- or column-major, else a row-major copy: on other strides (a column slice of a
    weight) oneDNN falls back to a reference kernel a thousand times slower."""
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for a (M, K) and b (K, N) -> (M, N)."""
    return linear(a, b.t())


class Linear(nn.Linear):
    """``nn.Linear`` whose product runs through :func:`linear`; parameters and ``state_dict`` are nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class ConcatLinear(nn.Module):
    """``nn.Linear(in_a + in_b, out)`` applied to ``concat(a, b)``, its weight kept as the two column blocks.

    SMIE's critic starts with such a layer and applies it as ``W_a a + W_b b + bias`` (every visual row and every
    class text once). Slicing one (out, in_a + in_b) weight into the blocks at every step costs two copies
    forward and two zero-filled full-size gradients backward, a third of a step at MSR size; with the blocks
    stored apart there is nothing to copy. Initialisation draws nn.Linear's, and the ``state_dict`` holds
    nn.Linear's ``weight`` (out, in_a + in_b) and ``bias``, so checkpoints are unchanged.
    """

    def __init__(self, in_a: int, in_b: int, out: int):
        super().__init__()
        full = nn.Linear(in_a + in_b, out)
        self.in_a = int(in_a)
        self.weight_a = nn.Parameter(full.weight.detach()[:, :in_a].clone())
        self.weight_b = nn.Parameter(full.weight.detach()[:, in_a:].clone())
        self.bias = nn.Parameter(full.bias.detach().clone())
        self._register_state_dict_hook(ConcatLinear._join)
        self._register_load_state_dict_pre_hook(ConcatLinear._split, with_module=True)

    @staticmethod
    def _join(module, state, prefix, local_metadata):
        state[prefix + "weight"] = torch.cat((state.pop(prefix + "weight_a"), state.pop(prefix + "weight_b")), 1)
        state.move_to_end(prefix + "bias")
        return state

    @staticmethod
    def _split(module, state, prefix, *args):
        weight = state.pop(prefix + "weight", None)
        if weight is not None:
            state[prefix + "weight_a"], state[prefix + "weight_b"] = weight[:, :module.in_a], weight[:, module.in_a:]

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in_a + in_b) weight of the nn.Linear this layer is."""
        return torch.cat((self.weight_a, self.weight_b), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_a + in_b) -> (..., out)."""
        return linear(x[..., :self.in_a], self.weight_a) + linear(x[..., self.in_a:], self.weight_b, self.bias)
