"""Statistics: t intervals, exact Wilcoxon signed-rank, bootstrap, Holm, the method table, all against hand computations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from smie.pipeline.zsl.stats import compare_methods, format_cell, holm, mean_ci, paired_test

T_975_3 = 3.182446305284263


def brute_wilcoxon(ranks, positive):
    """Exact two-sided p by enumerating every sign pattern of the (non-zero) differences with these ranks."""
    w = sum(r for r, pos in zip(ranks, positive) if pos)
    le = ge = 0
    patterns = list(itertools.product((False, True), repeat=len(ranks)))
    for signs in patterns:
        s = sum(r for r, pos in zip(ranks, signs) if pos)
        le += s <= w
        ge += s >= w
    return min(1.0, 2 * min(le, ge) / len(patterns))


def test_mean_ci_by_hand():
    values = [0.40, 0.50, 0.45, 0.55]
    mean = (0.40 + 0.50 + 0.45 + 0.55) / 4
    sd = math.sqrt(((0.40 - mean) ** 2 + (0.50 - mean) ** 2 + (0.45 - mean) ** 2 + (0.55 - mean) ** 2) / 3)
    half = T_975_3 * sd / math.sqrt(4)
    ci = mean_ci(values)
    assert ci["n"] == 4
    assert ci["mean"] == pytest.approx(0.475, abs=1e-12)
    assert ci["sd"] == pytest.approx(sd, abs=1e-12)
    assert ci["half"] == pytest.approx(half, abs=1e-9)
    assert ci["lo"] == pytest.approx(mean - half, abs=1e-9)
    assert ci["hi"] == pytest.approx(mean + half, abs=1e-9)
    assert mean_ci([0.40, float("nan"), 0.50, 0.45, 0.55]) == pytest.approx(ci, nan_ok=True)


def test_mean_ci_degenerate():
    one = mean_ci([0.3])
    assert one["n"] == 1 and one["mean"] == 0.3
    assert all(math.isnan(one[k]) for k in ("lo", "hi", "half"))
    for empty in ([], [float("nan")]):
        none = mean_ci(empty)
        assert none["n"] == 0
        assert all(math.isnan(none[k]) for k in ("mean", "lo", "hi", "half", "sd"))


def test_wilcoxon_six_pairs_enumerated():
    a = [5, 3, 8, 6, 2, 9]
    b = [2, 4, 3, 4, 6, 3]
    d = [3, -1, 5, 2, -4, 6]
    expected = brute_wilcoxon([abs(x) for x in d], [x > 0 for x in d])
    res = paired_test(a, b)
    assert res["method"] == "wilcoxon" and res["n"] == 6
    assert res["p"] == expected
    assert res["diff_mean"] == pytest.approx(sum(d) / 6)
    ci = mean_ci(d)
    assert (res["diff_lo"], res["diff_hi"]) == pytest.approx((ci["lo"], ci["hi"]))


def test_wilcoxon_textbook_all_positive():
    res = paired_test([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert res["p"] == 2 / 32 == 0.0625
    assert paired_test([0, 0, 0, 0, 0], [1, 2, 3, 4, 5])["p"] == 0.0625


def test_wilcoxon_ties_enumerated():
    d = [1, -1, 2, 3]
    ranks = [1.5, 1.5, 3, 4]
    expected = brute_wilcoxon(ranks, [x > 0 for x in d])
    assert paired_test(d, [0, 0, 0, 0])["p"] == expected
    assert paired_test([1, -1], [0, 0])["p"] == 1.0


def test_wilcoxon_zeros_dropped_and_all_zero():
    d = [0, 3, -1, 5, 0, 2, -4, 6]
    expected = brute_wilcoxon([3, 1, 5, 2, 4, 6], [True, False, True, True, False, True])
    res = paired_test(d, [0] * len(d))
    assert res["p"] == expected and res["n"] == 8
    assert paired_test([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])["p"] == 1.0


def test_wilcoxon_nan_pairs_dropped():
    res = paired_test([1, 2, float("nan"), 3, 4, 5], [0, 0, 0, 0, float("nan"), 0])
    assert res["n"] == 4
    assert res["p"] == 2 / 16


def test_wilcoxon_matches_scipy_exact():
    from scipy import stats

    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.1, 9)
    b = a + rng.normal(0.02, 0.05, 9)
    ours = paired_test(a, b)["p"]
    try:
        theirs = stats.wilcoxon(a, b, method="exact").pvalue
    except TypeError:
        pytest.skip("this scipy's wilcoxon has no method='exact'")
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_wilcoxon_many_pairs_runs():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 1.0, 60)
    p = paired_test(d, np.zeros(60))["p"]
    assert 0.0 < p <= 1.0


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown paired test"):
        paired_test([1, 2], [0, 0], method="sign")
    with pytest.raises(ValueError, match="unknown paired test"):
        compare_methods({"a": [1.0]}, method="ttest")


def test_bootstrap_deterministic_and_covers_mean():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.3, 0.5, 10)
    a = b + 0.05 + rng.normal(0, 0.03, 10)
    first = paired_test(a, b, method="bootstrap")
    assert first == paired_test(a, b, method="bootstrap", seed=0)
    assert first["method"] == "bootstrap" and first["n"] == 10
    assert first["diff_mean"] == pytest.approx(float(np.mean(a - b)))
    assert first["diff_lo"] <= first["diff_mean"] <= first["diff_hi"]
    assert first["diff_lo"] != paired_test(a, b, method="bootstrap", seed=7)["diff_lo"]
    assert paired_test([1, 2, 3, 4, 5], [0] * 5, method="bootstrap")["p"] == 0.0
    assert paired_test([0.3, 0.4], [0.3, 0.4], method="bootstrap")["p"] == 1.0


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, float("nan"), 0.04]) == pytest.approx([0.02, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_compare_methods_reference_and_significance():
    base = np.linspace(0.30, 0.48, 10)
    noise = np.array([0.001, -0.002, 0.003, 0.0, -0.001, 0.002, -0.003, 0.001, 0.0, -0.001])
    best = base + 0.1 + noise
    spread = np.array([0.011, -0.012, 0.021, -0.022, 0.031, -0.032, 0.041, -0.042, 0.051, -0.052])
    table = {"lower": list(base), "best": list(best), "tied": list(best + spread)}
    out = compare_methods(table)
    assert out["reference"] == "best" and out["method"] == "wilcoxon" and out["level"] == 0.95
    rows = {row["method"]: row for row in out["rows"]}
    assert [row["method"] for row in out["rows"]] == ["best", "tied", "lower"]

    ref = rows["best"]
    assert ref["significant"] is False
    assert all(math.isnan(ref[k]) for k in ("diff_mean", "diff_lo", "diff_hi", "p", "p_holm"))
    assert ref["mean"] == pytest.approx(float(np.mean(best)))

    lower = rows["lower"]
    assert lower["p"] == 2 / 1024
    assert lower["p_holm"] == pytest.approx(2 * 2 / 1024)
    assert lower["significant"] is True
    assert lower["diff_mean"] == pytest.approx(-0.1 - float(np.mean(noise)))
    assert lower["n"] == 10

    tied = rows["tied"]
    expected = brute_wilcoxon(list(range(1, 11)), [x > 0 for x in spread])
    assert tied["p"] == pytest.approx(expected, abs=1e-12)
    assert tied["p_holm"] == pytest.approx(max(expected, 4 / 1024))
    assert tied["significant"] is False


def test_compare_methods_explicit_reference_and_errors():
    table = {"a": [0.5, 0.6, 0.7], "b": [0.4, 0.5, 0.6]}
    out = compare_methods(table, reference="b")
    assert out["reference"] == "b"
    assert [row["method"] for row in out["rows"]] == ["a", "b"]
    assert out["rows"][0]["diff_mean"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="reference"):
        compare_methods(table, reference="c")
    with pytest.raises(ValueError, match="different numbers of runs"):
        compare_methods({"a": [0.5], "b": [0.4, 0.5]})


def test_format_cell():
    assert format_cell(0.455, 0.382, 0.528) == "45.5 [38.2, 52.8]"
    assert format_cell(0.455, 0.382, 0.528, scale=1.0, digits=3) == "0.455 [0.382, 0.528]"
    assert format_cell(0.3, float("nan"), float("nan")) == "30.0"
    assert format_cell(float("nan"), float("nan"), float("nan")) == "n/a"
