"""Confidence intervals and paired tests for comparing methods over runs (folds x seeds).

A "run" is one (fold, seed) pair; every method is evaluated on the same runs, so a method's results form a
vector of shape (R,) aligned by run across methods.

- :func:`mean_ci`: Student-t interval of the mean over runs, ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)``
  with ``sd`` the sample standard deviation (ddof=1). Runs are treated as independent draws; with few runs
  (10 folds, a handful of seeds) the t quantile, not the normal one, gives the right width.
- :func:`paired_test`: the difference ``a - b`` over matched runs. The default is the two-sided Wilcoxon
  signed-rank test with its exact null distribution (every sign pattern of the non-zero differences equally
  likely), computed here by dynamic programming over rank sums: it does not assume the differences are
  normal, and with 10 folds the normal approximation is poor while the exact distribution is cheap.
  A paired bootstrap of the mean difference is the alternative.
- :func:`holm`: Holm-Bonferroni adjustment, used across the comparisons of every method against a reference,
  so "significant" controls the family-wise error rate over the whole table.
- :func:`compare_methods`: all of the above as table rows; :func:`format_cell`: ``"45.5 [38.2, 52.8]"``.
"""
from __future__ import annotations

import math

import numpy as np

METHODS = ("wilcoxon", "bootstrap")
NAN = float("nan")


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean and Student-t interval of ``values`` (shape (R,), NaNs dropped).

    Returns ``dict(mean, lo, hi, half, n, sd)``; with one value the interval (and ``sd``) is NaN, with none
    everything but ``n`` is NaN.
    """
    from scipy.stats import t

    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return dict(mean=NAN, lo=NAN, hi=NAN, half=NAN, n=0, sd=NAN)
    mean = float(x.mean())
    if n == 1:
        return dict(mean=mean, lo=NAN, hi=NAN, half=NAN, n=1, sd=NAN)
    sd = float(x.std(ddof=1))
    half = float(t.ppf((1.0 + level) / 2.0, n - 1)) * sd / math.sqrt(n)
    return dict(mean=mean, lo=mean - half, hi=mean + half, half=half, n=n, sd=sd)


def _wilcoxon_exact(d: np.ndarray, scale: float) -> float:
    """Two-sided exact Wilcoxon signed-rank p-value of differences ``d`` (shape (n,), no NaNs)."""
    from scipy.stats import rankdata

    mag = np.round(np.abs(d) / scale, 12)
    keep = mag > 0
    if not keep.any():
        return 1.0
    ranks2 = np.rint(2.0 * rankdata(mag[keep])).astype(np.int64)
    w = int(ranks2[d[keep] > 0].sum())
    total = int(ranks2.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for r in ranks2:
        step = 0.5 * dist
        step[r:] += 0.5 * dist[: total + 1 - r]
        dist = step
    return min(1.0, 2.0 * min(float(dist[: w + 1].sum()), float(dist[w:].sum())))


def paired_test(a, b, method: str = "wilcoxon", level: float = 0.95, seed: int = 0,
                n_boot: int = 10_000) -> dict:
    """Paired comparison of ``a`` and ``b`` (both shape (R,), aligned by run) through ``d = a - b``.

    Pairs with a NaN on either side are dropped. ``method="wilcoxon"``: exact two-sided signed-rank test
    (zero differences dropped, average ranks for tied ``|d|``, ``p = 1`` when every difference is zero), the
    interval being :func:`mean_ci` of ``d``. ``method="bootstrap"``: ``n_boot`` resamples of the runs with a
    generator seeded by ``seed``, percentile interval and ``p = 2 * min(P(mean* <= 0), P(mean* >= 0))``.
    Returns ``dict(diff_mean, diff_lo, diff_hi, p, n, method)``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown paired test {method!r}; choose one of {', '.join(METHODS)}")
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    d = x - y
    n = int(d.size)
    ci = mean_ci(d, level)
    out = dict(diff_mean=ci["mean"], diff_lo=ci["lo"], diff_hi=ci["hi"], p=NAN, n=n, method=method)
    if n == 0:
        return out
    if method == "wilcoxon":
        scale = max(float(np.abs(x).max()), float(np.abs(y).max()), np.finfo(float).tiny)
        out["p"] = _wilcoxon_exact(d, scale)
        return out
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.percentile(boot, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    p = 2.0 * min(float(np.mean(boot <= 0.0)), float(np.mean(boot >= 0.0)))
    out.update(diff_lo=float(lo), diff_hi=float(hi), p=min(1.0, max(0.0, p)))
    return out


def holm(pvalues) -> list[float]:
    """Holm-Bonferroni adjusted p-values, same order as ``pvalues`` (shape (m,)); NaNs stay NaN, uncounted."""
    p = np.asarray(pvalues, dtype=float).ravel()
    adj = np.full(p.shape, NAN)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adj[i] = running
    return [float(v) for v in adj]


def compare_methods(table: dict[str, list[float]], reference: str | None = None, level: float = 0.95,
                    method: str = "wilcoxon", alpha: float = 0.05) -> dict:
    """Every method against a reference, over runs aligned by index.

    ``table`` maps a method name to its values, each of shape (R,) (same index = same fold x seed). The
    reference defaults to the method with the highest mean. Each row holds the method's mean and interval,
    the paired difference ``method - reference`` with its interval and p-value, the Holm-adjusted p-value
    (over the non-reference comparisons) and ``significant = p_holm < alpha``; the reference's own row has
    NaN difference fields. Rows are sorted by mean, best first. Returns
    ``dict(reference, level, method, rows)``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown paired test {method!r}; choose one of {', '.join(METHODS)}")
    if not table:
        raise ValueError("no methods to compare")
    lengths = {name: len(v) for name, v in table.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"methods have different numbers of runs: {lengths}")
    cis = {name: mean_ci(v, level) for name, v in table.items()}
    if reference is None:
        ranked = [name for name in table if not math.isnan(cis[name]["mean"])]
        if not ranked:
            raise ValueError("every method has only missing values")
        reference = max(ranked, key=lambda name: cis[name]["mean"])
    elif reference not in table:
        raise ValueError(f"reference {reference!r} is not among the methods: {', '.join(table)}")
    rows = []
    for name, values in table.items():
        ci = cis[name]
        row = dict(method=name, mean=ci["mean"], lo=ci["lo"], hi=ci["hi"], n=ci["n"], diff_mean=NAN,
                   diff_lo=NAN, diff_hi=NAN, p=NAN, p_holm=NAN, significant=False)
        if name != reference:
            test = paired_test(values, table[reference], method=method, level=level)
            row.update(diff_mean=test["diff_mean"], diff_lo=test["diff_lo"], diff_hi=test["diff_hi"],
                       p=test["p"])
        rows.append(row)
    others = [row for row in rows if row["method"] != reference]
    for row, adj in zip(others, holm([row["p"] for row in others])):
        row["p_holm"] = adj
        row["significant"] = bool(adj < alpha)
    rows.sort(key=lambda row: (math.isnan(row["mean"]), -row["mean"] if not math.isnan(row["mean"]) else 0.0))
    return dict(reference=reference, level=level, method=method, rows=rows)


def format_cell(mean: float, lo: float, hi: float, scale: float = 100.0, digits: int = 1) -> str:
    """``"45.5 [38.2, 52.8]"`` (values times ``scale``); the mean alone without an interval, ``"n/a"`` without a mean."""
    if mean is None or math.isnan(mean):
        return "n/a"
    cell = f"{mean * scale:.{digits}f}"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return cell
    return f"{cell} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
