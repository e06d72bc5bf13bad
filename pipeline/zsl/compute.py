"""Stage two's CPU speed paths, all in one place. None changes a number beyond float rounding; each is switched
by explicit config, :class:`Compute` (a field of every stage-two config, recorded in ``metrics.json`` as
``compute``); none is chosen by an environment variable or at import.

- ``matmul``: PyTorch multiplies float32 matrices on the CPU with MKL, which on AMD processors runs its AVX2 path
  even where the CPU has AVX-512; oneDNN, inside every PyTorch CPU build too, uses AVX-512 there: ~200 against
  ~100 GFLOP/s on one core of an AVX-512 AMD EPYC. :class:`Linear` (a drop-in ``nn.Linear``: same parameters,
  initialisation, ``state_dict``) and :func:`mm` can send such products, forward and backward, to oneDNN's
  inner-product kernel, ``torch.ops.mkldnn._linear_pointwise``: a private op, checked against
  ``torch.nn.functional.linear`` before first use, IEEE float32 with no reduced precision, only the summation order
  differs. ``auto`` takes it only on a CPU with AVX-512 (``torch.backends.cpu.get_cpu_capability()``), where that
  gain was measured; on an AVX2-only CPU torch's public path is as fast (``bench/compare_cost.py`` prints both
  rates, docs/performance.md). ``onednn`` forces it, ``torch`` (or a missing kernel, another device or dtype)
  keeps torch's own.
- ``fused_adam``: ``torch.optim.Adam(fused=True)``, the same update in one pass over each tensor (:func:`adam`).
- ``layer_norm``: ``fast`` writes ``LayerNorm(D, elementwise_affine=False)`` out (:func:`layer_norm`): on small
  CPU batches the fused kernel and ``Tensor.var`` stall on their thread pool; ``torch`` calls the kernel.
- ``split_first_layer``: SMIE's critic applies its first layer to ``concat(v, s)`` as ``W_v v + W_s s + b``;
  :class:`ConcatLinear` stores the two column blocks apart, so no step slices and copies the (H, D + E) weight
  (its ``state_dict`` is still the one ``nn.Linear``'s). ``False`` keeps one weight and slices it.
- ``heap``: ``keep`` raises glibc's mmap and trim thresholds (``mallopt``), so the memory a step frees is reused
  instead of coming back as fresh zero-filled pages at every step. This one is process-wide, so no library call
  sets it: the process's entry point does, once (:func:`apply_heap`: the ``smie`` stage-two commands, and each
  worker of a ``compare`` grid). Stage one never does (a GCN's blocks fragment such a heap; docs/performance.md).

A run makes its config active with :func:`using` (a context variable: scoped to the run, not the process);
code outside any run sees the defaults. Every speed path has an equivalence test in ``tests/test_stage2_fast.py``.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import functools
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from smie.features.store import SmieError

MATMULS = ("auto", "onednn", "torch")
LAYER_NORMS = ("fast", "torch")
HEAPS = ("keep", "system")


@dataclass(frozen=True)
class Compute:
    """Which speed paths a run takes (module docstring); the defaults take them all."""

    matmul: str = "auto"
    fused_adam: bool = True
    layer_norm: str = "fast"
    split_first_layer: bool = True
    heap: str = "keep"

    def __post_init__(self):
        for name, value, allowed in (("matmul", self.matmul, MATMULS), ("layer_norm", self.layer_norm, LAYER_NORMS),
                                     ("heap", self.heap, HEAPS)):
            if value not in allowed:
                raise SmieError(f"compute {name} must be one of {', '.join(allowed)}, got {value!r}")

    def record(self) -> dict:
        """What ``metrics.json`` records: the paths taken (the matmul path resolved, the process's heap)."""
        return dict(cpu_matmul=matmul_backend(self), fused_adam=self.fused_adam, layer_norm=self.layer_norm,
                    split_first_layer=self.split_first_layer, heap=heap_mode())


_ACTIVE: contextvars.ContextVar[Compute] = contextvars.ContextVar("smie_compute", default=Compute())


@contextlib.contextmanager
def using(compute: Compute) -> Iterator[Compute]:
    """Make ``compute`` the active config inside the block (this thread or task only)."""
    token = _ACTIVE.set(compute)
    try:
        yield compute
    finally:
        _ACTIVE.reset(token)


def active() -> Compute:
    return _ACTIVE.get()


# --- matmul ---------------------------------------------------------------------------------------------------------

def _kernel():
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


@functools.lru_cache(maxsize=1)
def kernel_works() -> bool:
    """Whether oneDNN's inner-product kernel exists here and agrees with ``F.linear`` (checked once)."""
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


def has_avx512() -> bool:
    """Whether torch's CPU kernels run with AVX-512 here (where oneDNN's inner product earns its place)."""
    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


def matmul_backend(compute: Compute | None = None) -> str:
    """``onednn`` or ``torch``: the path CPU float32 products take under ``compute`` (default: the active one)."""
    choice = (compute or active()).matmul
    if choice == "torch" or (choice == "auto" and not has_avx512()):
        return "torch"
    if not kernel_works():
        if choice == "onednn":
            warnings.warn("compute matmul 'onednn': the oneDNN kernel is missing or disagrees with torch; using torch")
        return "torch"
    return "onednn"


class _OneDNNLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` for 2-D float32 CPU tensors; the backward products go through :func:`linear`
    again, so they are differentiable too (ReViSE's double backward)."""

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
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and matmul_backend() == "onednn"


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


# --- SMIE's first layer, layer norm, Adam ---------------------------------------------------------------------------

class ConcatLinear(nn.Module):
    """``nn.Linear(in_a + in_b, out)`` on ``concat(a, b)``; :meth:`blocks` gives ``(W_a, W_b, bias)``.

    With ``split_first_layer`` (at construction) the two column blocks are separate parameters, and state-dict
    hooks keep nn.Linear's ``weight`` (out, in_a + in_b) and ``bias`` in checkpoints; otherwise one weight is kept
    and sliced at every call. Initialisation draws nn.Linear's either way."""

    def __init__(self, in_a: int, in_b: int, out: int):
        super().__init__()
        full = nn.Linear(in_a + in_b, out)
        self.in_a, self.split = int(in_a), active().split_first_layer
        if self.split:
            self.weight_a = nn.Parameter(full.weight.detach()[:, :in_a].clone())
            self.weight_b = nn.Parameter(full.weight.detach()[:, in_a:].clone())
            self._register_state_dict_hook(ConcatLinear._join)
            self._register_load_state_dict_pre_hook(ConcatLinear._split, with_module=True)
        else:
            self.joined = nn.Parameter(full.weight.detach().clone())
            self._register_state_dict_hook(ConcatLinear._rename)
            self._register_load_state_dict_pre_hook(ConcatLinear._unrename, with_module=True)
        self.bias = nn.Parameter(full.bias.detach().clone())

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

    @staticmethod
    def _rename(module, state, prefix, local_metadata):
        state[prefix + "weight"] = state.pop(prefix + "joined")
        state.move_to_end(prefix + "bias")
        return state

    @staticmethod
    def _unrename(module, state, prefix, *args):
        if prefix + "weight" in state:
            state[prefix + "joined"] = state.pop(prefix + "weight")

    def blocks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W_a (out, in_a), W_b (out, in_b), bias (out,))``."""
        if self.split:
            return self.weight_a, self.weight_b, self.bias
        return self.joined[:, :self.in_a], self.joined[:, self.in_a:], self.bias

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in_a + in_b) weight of the nn.Linear this layer is."""
        return torch.cat((self.weight_a, self.weight_b), 1) if self.split else self.joined

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_a + in_b) -> (..., out)."""
        w_a, w_b, bias = self.blocks()
        return linear(x[..., :self.in_a], w_a) + linear(x[..., self.in_a:], w_b, bias)


def layer_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``LayerNorm(D, elementwise_affine=False)`` over the last axis of x (..., D); written out (``fast``: on small
    CPU batches the fused kernel stalls on its thread pool, milliseconds per call, and so does ``Tensor.var``,
    160 us for 256 x 256 where the centred square's mean takes 19 us), same values to float rounding."""
    if active().layer_norm == "torch":
        return F.layer_norm(x, x.shape[-1:], eps=eps)
    centred = x - x.mean(dim=-1, keepdim=True)
    var = (centred * centred).mean(dim=-1, keepdim=True)
    return centred / torch.sqrt(var + eps)


def adam(params, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam``, fused when the active config says so (the same update in one pass over each tensor
    instead of a dozen; a tenth of an SMIE step's time on CPU). Stage-two methods build their optimisers with it."""
    return torch.optim.Adam(params, fused=active().fused_adam, **kwargs)


# --- heap -----------------------------------------------------------------------------------------------------------

MMAP_BYTES = 256 << 20
"""Blocks below this come from the reusable heap (glibc's default: 128 KiB, adaptive up to 32 MiB)."""
TRIM_BYTES = 1 << 30
"""Free memory at the heap's top is returned to the kernel only beyond this much."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP: list[str] = []  # the process's heap mode once an entry point applied one


def heap_mode() -> str:
    """``keep`` when this process raised glibc's thresholds (:func:`apply_heap`), else ``system``."""
    return _HEAP[0] if _HEAP else "system"


def apply_heap(compute: Compute) -> str:
    """For a process's entry point only: with ``compute.heap == "keep"`` raise glibc's mmap and trim thresholds
    (the documented ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` tunables, set from inside the process),
    so stage two's freed blocks are reused and its steps take no page faults; a process keeps up to
    :data:`TRIM_BYTES` of freed memory. Other C libraries, and ``system``, leave the allocator alone. Once set the
    process keeps it. Returns :func:`heap_mode`."""
    if not _HEAP and compute.heap == "keep" and _mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) \
            and _mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES):
        _HEAP.append("keep")
    return heap_mode()


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        if not libc.gnu_get_libc_version():
            return False
        return libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
    except (OSError, AttributeError):
        return False
