"""ZSL/GZSL metrics, calibrated stacking, a seen/unseen gate, and validation-only selection rules.

Every function takes a score matrix ``scores`` (N, K) (higher = more likely; any method's ``scores``) and
``labels`` (N,) holding column indices into it. Definitions (docs/evaluation.md):

- ZSL top-1 ``acc``: fraction of unseen-class test samples whose arg-max over the unseen classes is right
  (per-sample, the number SMIE, SynSE and MSF report); ``per_class_acc``: mean over classes of each class's
  accuracy (insensitive to class imbalance).
- GZSL: arg-max over all classes; ``seen``/``unseen`` are per-sample accuracies on seen-/unseen-class samples,
  ``h`` their harmonic mean (the SynSE/MSF code's definition); ``*_pc`` the per-class-mean variants.
- Calibrated stacking (Chao et al. 2016): subtract ``gamma`` from seen-class scores before the arg-max. The
  scores are first standardised per sample over the candidate classes (``(s - mean) / std`` of each row), so
  ``gamma`` is in units of the sample's score spread: it is chosen on the validation model and applied to the
  separately retrained final model, whose raw score scale differs (raw-scale gamma gave S=0 or U=0 there).
- Entropy gate (ours, not MSF's): a sample whose seen-class confidence (1 - normalised entropy) is below a
  threshold is routed to the unseen classes, the rest to the seen classes.
``gamma`` and the gate threshold are chosen by :func:`choose_gamma`/:func:`choose_gate` on validation scores.
- MSF gate (the MSF/SynSE code's ``gating_train.py``/``gating_eval.py``): two experts, the ZSL classifier's
  softmax over the unseen classes and the backbone's temperature-scaled softmax over the seen classes; a logistic
  regression on the top-k sorted probabilities of both (:func:`gate_features`, :func:`fit_logistic`) says
  "seen" when P(seen) > 0.5, and the sample takes that expert's arg-max (:func:`msf_gate_predict`).
"""
from __future__ import annotations

import numpy as np


def _per_class(correct: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.array([correct[labels == c].mean() if (labels == c).any() else np.nan for c in classes])


def zsl_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1/top-5 per-sample accuracy and mean per-class accuracy of (N, K) scores against labels (N,)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(labels) == 0:
        return {"acc": float("nan"), "top5": float("nan"), "per_class_acc": float("nan"), "n": 0}
    pred = scores.argmax(axis=1)
    correct = pred == labels
    k = min(5, scores.shape[1])
    top5 = (np.argsort(-scores, axis=1)[:, :k] == labels[:, None]).any(axis=1)
    classes = np.unique(labels)
    return {"acc": float(correct.mean()), "top5": float(top5.mean()),
            "per_class_acc": float(np.nanmean(_per_class(correct, labels, classes))), "n": int(len(labels))}


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def gzsl_from_predictions(pred: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> dict:
    """S, U, H from predicted columns (N,), labels (N,) and a (K,) bool mask of seen columns."""
    pred, labels, seen_mask = np.asarray(pred), np.asarray(labels), np.asarray(seen_mask, bool)
    correct = pred == labels
    is_seen = seen_mask[labels]
    out = {}
    for name, sel in (("seen", is_seen), ("unseen", ~is_seen)):
        out[name] = float(correct[sel].mean()) if sel.any() else float("nan")
        out[f"{name}_pc"] = float(np.nanmean(_per_class(correct[sel], labels[sel], np.unique(labels[sel])))) \
            if sel.any() else float("nan")
    out["h"] = harmonic(out["seen"], out["unseen"])
    out["h_pc"] = harmonic(out["seen_pc"], out["unseen_pc"])
    out["n_seen"], out["n_unseen"] = int(is_seen.sum()), int((~is_seen).sum())
    return out


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-sample z-scores (N, K): each row minus its mean over the K candidate classes, over its std (rows
    with zero spread are only centred). Keeps every row's arg-max; puts gamma on a model-independent scale."""
    s = np.asarray(scores, dtype=np.float64)
    std = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def calibrated_stacking(scores: np.ndarray, seen_mask: np.ndarray, gamma: float) -> np.ndarray:
    """Standardised scores (:func:`standardise`) with ``gamma`` subtracted from every seen-class column."""
    return standardise(scores) - gamma * np.asarray(seen_mask, dtype=np.float64)[None, :]


def gzsl_metrics(scores: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, gamma: float = 0.0) -> dict:
    """GZSL S/U/H of (N, K) scores over all classes, after calibrated stacking with ``gamma`` (in per-sample
    standard deviations; ``gamma=0`` is the plain arg-max)."""
    out = gzsl_from_predictions(calibrated_stacking(scores, seen_mask, gamma).argmax(axis=1), labels, seen_mask)
    out["gamma"] = float(gamma)
    return out


def _grid(values: np.ndarray, n: int = 101) -> np.ndarray:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.array([0.0])
    return np.unique(np.concatenate([[0.0], np.quantile(values, np.linspace(0, 1, n))]))


def choose_gamma(scores: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> float:
    """The ``gamma`` maximising H on these (validation) scores; candidates are quantiles of the per-sample
    margin ``max seen - max unseen`` of the standardised scores (where a prediction can flip), plus 0."""
    seen_mask = np.asarray(seen_mask, bool)
    z = standardise(scores)
    margin = z[:, seen_mask].max(axis=1) - z[:, ~seen_mask].max(axis=1)
    best, best_h = 0.0, -1.0
    for g in _grid(margin):
        h = gzsl_metrics(scores, labels, seen_mask, g)["h"]
        if h > best_h + 1e-12:
            best, best_h = float(g), h
    return best


def gate_statistic(scores: np.ndarray, seen_mask: np.ndarray) -> np.ndarray:
    """Confidence over the seen classes, 1 - H(p) / log(K_seen) of the softmax p of the seen-class scores (N,).

    Low means "probably not a seen class". Normalising the entropy by log(K_seen) keeps the statistic on one
    scale whatever the number of seen classes: the threshold is chosen in the validation phase (fewer seen
    classes, since the validation classes pose as unseen) and applied at test time (all seen classes), where a
    raw top-softmax probability would shift with the class count and send every sample to one side.
    """
    s = np.asarray(scores, dtype=np.float64)[:, np.asarray(seen_mask, bool)]
    k = s.shape[1]
    if k < 2:
        return np.ones(len(s))
    s = s - s.max(axis=1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
    return 1.0 - entropy / np.log(k)


def gated_predict(scores: np.ndarray, seen_mask: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted columns: arg-max over unseen classes where the gate statistic < threshold, else over seen."""
    scores, seen_mask = np.asarray(scores), np.asarray(seen_mask, bool)
    seen_cols, unseen_cols = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    to_unseen = gate_statistic(scores, seen_mask) < threshold
    return np.where(to_unseen, unseen_cols[scores[:, unseen_cols].argmax(axis=1)],
                    seen_cols[scores[:, seen_cols].argmax(axis=1)])


def gate_metrics(scores: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, threshold: float) -> dict:
    out = gzsl_from_predictions(gated_predict(scores, seen_mask, threshold), labels, seen_mask)
    out["threshold"] = float(threshold)
    return out


def choose_gate(scores: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> float:
    """The gate threshold maximising H on these (validation) scores (candidates: quantiles of the statistic)."""
    stat = gate_statistic(scores, seen_mask)
    best, best_h = 0.0, -1.0
    for t in np.unique(np.concatenate([_grid(stat), [np.inf]])):
        h = gate_metrics(scores, labels, seen_mask, t)["h"]
        if h > best_h + 1e-12:
            best, best_h = float(t), h
    return best


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row softmax (N, K) of ``scores / temperature`` (the code's ``temp_scale``)."""
    s = np.asarray(scores, dtype=np.float64) / temperature
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def gate_features(p_unseen: np.ndarray, p_seen: np.ndarray, k: int) -> np.ndarray:
    """MSF's gate input (N, 2k): the k largest probabilities of the unseen expert, then of the seen expert, each
    sorted in decreasing order (the code's ``np.sort(p, 1)[:, ::-1][:, :ss]``)."""
    top = lambda p: -np.sort(-np.asarray(p, dtype=np.float64), axis=1)[:, :k]  # noqa: E731
    return np.concatenate([top(p_unseen), top(p_seen)], axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, iters: int = 100) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (N, d), labels (N,) in {0, 1} -> (coef (d,), intercept) of P(y = 1).

    The optimum of the code's ``LogisticRegression(C=1, solver='lbfgs', multi_class='multinomial')`` on two
    classes: the multinomial fit splits ``w`` into ``w/2`` and ``-w/2`` for the two classes, so it minimises
    ``C * sum(log-loss) + |w|^2 / 4`` (sklearn's binary fit with ``C' = 2C``), intercept not penalised. The
    problem is strictly convex; damped Newton steps reach the optimum to machine precision.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("the gate needs samples of both seen and unseen classes")
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    reg = np.full(a.shape[1], 0.5 / c)
    reg[-1] = 0.0

    def objective(beta):
        z = a @ beta
        return np.logaddexp(0.0, z).sum() - y @ z + 0.5 * reg @ beta ** 2

    beta = np.zeros(a.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ beta)))
        grad = a.T @ (p - y) + reg * beta
        if np.abs(grad).max() < 1e-10:
            break
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-12 * np.eye(a.shape[1])
        step, t, f0 = np.linalg.solve(hess, grad), 1.0, objective(beta)
        while objective(beta - t * step) > f0 - 1e-4 * t * grad @ step and t > 1e-10:
            t /= 2
        beta = beta - t * step
    return beta[:-1], float(beta[-1])


def logistic_proba(x: np.ndarray, coef, intercept: float) -> np.ndarray:
    """P(y = 1) (N,) of :func:`fit_logistic`'s model."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=np.float64) @ np.asarray(coef) + intercept)))


def fit_msf_gate(unseen: tuple[np.ndarray, np.ndarray], seen: tuple[np.ndarray, np.ndarray], k: int,
                 temperature: float, seed: int = 0, threshold: float = 0.5) -> dict:
    """MSF's gate (``gating_train.py``) from the two experts' probabilities ``(p_unseen, p_seen)`` on samples of
    unseen classes (label 0) and of seen classes (label 1): a seeded random 4/5 of each group fits
    :func:`fit_logistic` on :func:`gate_features`, the other 1/5 measures its accuracy at ``threshold``.
    Returns the JSON-able gate: coef, intercept, k, temperature, threshold, n_fit, holdout_accuracy."""
    rng = np.random.default_rng(seed)
    x = [gate_features(pu, ps, k) for pu, ps in (unseen, seen)]
    held = [np.isin(np.arange(len(v)), rng.choice(len(v), len(v) // 5, replace=False)) for v in x]
    label = lambda mask, value: np.full(int(mask.sum()), float(value))  # noqa: E731
    fit_y = np.concatenate([label(~held[0], 0), label(~held[1], 1)])
    coef, intercept = fit_logistic(np.concatenate([x[0][~held[0]], x[1][~held[1]]]), fit_y)
    hold_y = np.concatenate([label(held[0], 0), label(held[1], 1)])
    hold_p = logistic_proba(np.concatenate([x[0][held[0]], x[1][held[1]]]), coef, intercept)
    return dict(coef=coef.tolist(), intercept=intercept, k=int(k), temperature=float(temperature),
                threshold=float(threshold), n_fit=int(len(fit_y)),
                holdout_accuracy=float(((hold_p > threshold) == hold_y).mean()) if len(hold_y) else float("nan"))


def msf_gate_predict(p_unseen: np.ndarray, p_seen: np.ndarray, unseen_cols, seen_cols, gate: dict) -> np.ndarray:
    """Predicted columns (N,): where the gate's P(seen) > ``gate["threshold"]`` the seen expert's arg-max (as a
    column of ``seen_cols``), else the unseen expert's (of ``unseen_cols``). ``gate``: coef, intercept, k."""
    x = gate_features(p_unseen, p_seen, int(gate["k"]))
    seen = logistic_proba(x, gate["coef"], gate["intercept"]) > gate["threshold"]
    return np.where(seen, np.asarray(seen_cols)[np.argmax(p_seen, axis=1)],
                    np.asarray(unseen_cols)[np.argmax(p_unseen, axis=1)])


def select_epoch(curve: list[float], first_eligible: int = 0) -> int:
    """Index of the best value, counting only epochs from index ``first_eligible`` on when there are any (the
    protocol passes :meth:`~smie.pipeline.zsl.fit.FitOptions.first_eligible`); NaN (an epoch not evaluated) never
    wins; ties go to the earliest epoch. The one selection rule: the protocol's kept state, the selected epoch
    and the oracle all come from it."""
    values = np.asarray(curve, dtype=np.float64)
    start = first_eligible if first_eligible < len(values) else 0
    window = np.where(np.isnan(values[start:]), -np.inf, values[start:])
    return int(start + np.argmax(window))
