"""Rows of the parity table, the maximum-difference bookkeeping behind them, and the verdicts.

A row is one check of one method: what was compared, in which precision, the figure, and a status:

- ``SAME``: agreement where agreement is expected. In float64, a maximum absolute difference of at most
  ``1e-9`` times the quantity's scale (at least 1); in float32, at most ten times the official code's own
  float32 drift from its float64 run on the same inputs (both codes round differently, but no more than the
  official code differs from itself), or ``1e-6`` of the scale; predictions: all identical.
- ``DIFFERENT``: a known deviation, measured (each has a row in docs/fidelity.md);
- ``MISMATCH``: a difference where agreement is expected (``run.py`` exits 1);
- ``NOTE``: a fact about the official code (it crashes, it averages per batch ...);
- ``SKIP``: not run (an input is absent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TOL64 = 1e-9
FLOOR32 = 1e-6


@dataclass
class Row:
    method: str
    check: str
    dtype: str
    figure: str
    status: str


def as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x if x.dtype == torch.float64 else x.double()
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


class MaxDiff:
    """Running maximum of ``|a - b|`` (and of ``|a|``, the scale) over many updates (steps)."""

    def __init__(self):
        self.diff, self.scale, self.count = 0.0, 0.0, 0

    def _one(self, a, b) -> float:
        a, b = _tensor(a), _tensor(b)
        if a.shape != b.shape and a.numel() == b.numel() == 1:
            a, b = a.reshape(()), b.reshape(())
        if a.shape != b.shape:
            raise ValueError(f"compared shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        if a.numel() == 0:
            return 0.0
        d = float((a - b).abs().max())
        self.diff = max(self.diff, d)
        self.scale = max(self.scale, float(a.abs().max()))
        return d

    def update(self, a, b) -> float:
        self.count += 1
        return self._one(a, b)

    def update_dicts(self, a: dict, b: dict) -> float:
        """One update over all entries of two dicts of tensors (parameters or gradients by name)."""
        if set(a) != set(b):
            raise KeyError(f"parameter names differ: {sorted(set(a) ^ set(b))}")
        self.count += 1
        return max([self._one(a[k], b[k]) for k in sorted(a) if a[k] is not None or b[k] is not None] or [0.0])


class Sampled:
    """A fixed sample of coordinates of a dict of tensors, kept per step: float32 gradients are judged against
    the official code's own float32 drift on these coordinates (whole gradients of every step would not fit in
    memory)."""

    def __init__(self, n: int = 4096, seed: int = 0):
        self.n, self.seed, self.index, self.trace = n, seed, None, []

    def add(self, tensors: dict) -> None:
        keys = [k for k in sorted(tensors) if tensors[k] is not None]
        if self.index is None:
            sizes = [tensors[k].numel() for k in keys]
            rng = np.random.default_rng(self.seed)
            flat = np.sort(rng.choice(sum(sizes), min(self.n, sum(sizes)), replace=False))
            bounds = np.cumsum([0] + sizes)
            self.index = {k: torch.as_tensor(flat[(flat >= lo) & (flat < hi)] - lo)
                          for k, lo, hi in zip(keys, bounds[:-1], bounds[1:])}
        self.trace.append(torch.cat([tensors[k].detach().reshape(-1)[self.index[k]].double() for k in keys]))

    def max_diff(self, other: "Sampled") -> float:
        return max(float((a - b).abs().max()) for a, b in zip(self.trace, other.trace))

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.index.values())


def fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def same_row(method: str, check: str, dtype: torch.dtype, diff: MaxDiff, drift: float | None = None) -> Row:
    """A row expected SAME: judged by :data:`TOL64` in float64, against the official float32 ``drift`` in float32."""
    scale = max(1.0, diff.scale)
    if dtype == torch.float64:
        ok = diff.diff <= TOL64 * scale
        figure = f"max |Δ| {fmt(diff.diff)}"
    else:
        limit = max(10 * (drift or 0.0), FLOOR32 * scale)
        ok = diff.diff <= limit
        figure = f"max |Δ| {fmt(diff.diff)}" + ("" if drift is None else f" (official f32 drift {fmt(drift)})")
    if diff.count > 1:
        figure += f" over {diff.count}"
    return Row(method, check, dtype_name(dtype), figure, "SAME" if ok else "MISMATCH")


def grads_row(method: str, check: str, dtype: torch.dtype, full: MaxDiff, ours: "Sampled",
              official: "Sampled", official64: "Sampled | None") -> Row:
    """Gradients per step: in float64 judged on every coordinate; in float32 on the sampled coordinates, against
    the official code's float32 drift there (``official64``: its float64 run's trace)."""
    if dtype == torch.float64 or official64 is None:
        return same_row(method, check, dtype, full)
    diff, drift = ours.max_diff(official), official.max_diff(official64)
    ok = diff <= max(10 * drift, FLOOR32 * max(1.0, full.scale))
    figure = (f"max |Δ| {fmt(full.diff)} over {full.count}; on {ours.size} sampled coords "
              f"{fmt(diff)} (official f32 drift {fmt(drift)})")
    return Row(method, check, dtype_name(dtype), figure, "SAME" if ok else "MISMATCH")


def agreement_row(method: str, check: str, dtype: torch.dtype, a, b, expect_same: bool,
                  drift_flips: int | None = None) -> Row:
    """Prediction agreement of two label vectors. Expected equal: SAME when all agree, or in float32 when the
    disagreements are near-ties (at most ten times the official code's own float32-vs-float64 flips, or 0.1 %)."""
    a, b = np.asarray(a), np.asarray(b)
    flips = int((a != b).sum())
    share = 1 - flips / len(a) if len(a) else float("nan")
    if expect_same:
        figure = f"{len(a) - flips}/{len(a)} identical"
        ok = flips == 0
        if dtype == torch.float32 and drift_flips is not None:
            figure += f" (official f32 vs f64: {len(a) - drift_flips}/{len(a)})"
            ok = flips <= max(10 * drift_flips, 0.001 * len(a))
        return Row(method, check, dtype_name(dtype), figure, "SAME" if ok else "MISMATCH")
    figure = f"agreement {100 * share:.1f} % of {len(a)}"
    return Row(method, check, dtype_name(dtype), figure, "DIFFERENT" if flips else "SAME")


def dtype_name(dtype) -> str:
    return {torch.float64: "f64", torch.float32: "f32"}.get(dtype, "-")


def render(rows: list[Row]) -> str:
    """The table as fixed-width text (also valid Markdown)."""
    head = ("method", "check", "dtype", "figure", "status")
    cells = [head] + [(r.method, r.check, r.dtype, r.figure, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    line = lambda c: "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(c) for c in cells[1:]])
