"""The parity bench (``bench/parity``): smie's stage two against the official codes, run unchanged.

The official checkouts are not part of smie and CI has none (no internet): the short parity check runs when they
are found under ``$SMIE_PARITY_REPOS`` (a directory holding ``SMIE``, ``MSF-GZSSAR``, ``synse-zsl`` and
``CADA-VAE-PyTorch``; default ``../official`` beside the repository) and skips otherwise. The stand-ins the
bench gives the official code (``bench/parity/standins.py``) are tested without it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "parity"
OFFICIAL = Path(os.environ.get("SMIE_PARITY_REPOS", REPO.parent / "official"))
CHECKOUTS = {"smie": "SMIE", "msf": "MSF-GZSSAR", "synse": "synse-zsl", "cadavae": "CADA-VAE-PyTorch"}
MODULES = ("standins", "smie_side", "table", "cycles", "smie_parity", "msf_parity", "synse_parity", "cadavae_parity",
           "run")


@pytest.fixture(scope="module")
def bench():
    """``bench/parity`` importable for this module only (its modules have plain names such as ``table``)."""
    sys.path.insert(0, str(BENCH))
    try:
        import run

        yield run
    finally:
        sys.path.remove(str(BENCH))
        for name in MODULES:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def official() -> dict[str, Path]:
    found = {k: OFFICIAL / v for k, v in CHECKOUTS.items()}
    missing = [str(p) for p in found.values() if not p.is_dir()]
    if missing:
        pytest.skip(f"official checkouts not found ({', '.join(missing)}); set SMIE_PARITY_REPOS to run the parity "
                    "check")
    return found


def test_einops_standin_repeats_as_get_acc_and_the_masking_need(bench):
    import torch

    from standins import einops_standin

    e = einops_standin()
    x = torch.arange(6.0).view(2, 3)
    out = e.repeat(x, "b c -> b u c", u=4)
    assert out.shape == (2, 4, 3) and torch.equal(out[:, 2], x)
    out = e.repeat(x, "u c -> b u c", b=5)
    assert out.shape == (5, 2, 3) and torch.equal(out[4], x)
    idx = torch.tensor([[0, 2], [1, 3]])
    out = e.repeat(idx, "n t -> n c t v m", c=3, v=2, m=1)
    assert out.shape == (2, 3, 2, 2, 1) and torch.equal(out[1, 2, :, 1, 0], idx[1])
    with pytest.raises(NotImplementedError):
        e.repeat(x, "b c -> (b c)")


def test_sacred_standin_injects_config_values(bench):
    from standins import Experiment

    ex = Experiment("x")

    @ex.config
    def cfg():
        split = "2"
        unseen = eval("[1, " + split + "]")
        lr = 1e-5  # noqa: F841

    @ex.capture
    def fn(a, lr, unseen):
        return a, lr, unseen

    assert ex.cfg["unseen"] == [1, 2]
    assert fn(3) == (3, 1e-5, [1, 2])
    assert fn(3, lr=0.5) == (3, 0.5, [1, 2])


def test_noise_feed_hands_smie_the_prepared_draws(bench):
    import torch

    import smie_side as S
    from standins import Draws

    model = S.make("msf", 8, 6, torch.float64, latent=4)
    visual = torch.randn(3, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0])
    sem = torch.randn(2, 6, dtype=torch.float64)
    losses = []
    for _ in range(2):
        draws = Draws(seed=5)
        with S.feed_noise(draws):
            losses.append(float(S.loss(model, visual, labels, sem).detach()))
        assert draws.shapes == [(3, 1), (3, 1)]
    assert losses[0] == losses[1]
    zero = Draws(zeros=True)
    with S.feed_noise(zero):
        assert float(S.loss(model, visual, labels, sem).detach()) != losses[0]


@pytest.mark.slow
def test_short_parity_check_against_the_official_codes(bench, official, one_thread):
    """Minutes on the full settings; here a few steps of each method: everything expected equal is, and each
    known deviation shows as DIFFERENT (docs/fidelity.md)."""
    args = bench.parse(["--smie-repo", str(official["smie"]), "--msf-repo", str(official["msf"]), "--synse-repo",
                        str(official["synse"]), "--cadavae-repo", str(official["cadavae"]), "--smie-epochs", "2",
                        "--no-loop", "--cycles", "0", "--f32-steps", "30", "--clip-steps", "0", "--cada-steps", "30",
                        "--scan-cycles", "1", "--cada-epochs", "2", "--msf-text-feats", str(REPO / "no-such-dir")])
    rows, _ = bench.run(args)
    by = {(r.method, r.check, r.dtype): r for r in rows}
    mismatches = [r for r in rows if r.status == "MISMATCH"]
    assert not mismatches, mismatches

    def row(method, start, dtype="f64"):
        hits = [r for (m, c, d), r in by.items() if m == method and c.startswith(start) and d == dtype]
        assert hits, f"no row {method}/{start}/{dtype}"
        return hits[0]

    for dtype in ("f64", "f32"):
        assert row("SMIE", "loss per step", dtype).status == "SAME"
        assert row("SMIE", "test predictions: get_acc vs smie's critic on raw", dtype).status == "SAME"
        assert row("SMIE", "test predictions: get_acc vs smie's default", dtype).status == "DIFFERENT"
        assert row("MSF", "loss per step", dtype).status == "SAME"
        assert row("SynSE", "loss per step", dtype).status == "SAME"
        assert row("SynSE", "noise per half (smie noise='per-half', default): ZSL test predictions",
                   dtype).status == "SAME"
        assert row("SynSE", "smie noise='shared'", dtype).status == "DIFFERENT"
    assert "ValueError" in row("SMIE", "the code's 'sota' track").figure
    assert row("SMIE", "keyframe masking", "f32").status == "SAME"
    for split in ("55/5", "48/12", "110/10", "96/24"):  # issue #23: the README's per-split latent and cycle
        assert row("SynSE", f"defaults for {split}", "-").status == "SAME"
    assert row("CADA-VAE", "no noise: parameters").status == "SAME"
    assert row("CADA-VAE", "with noise").status == "DIFFERENT"
    scan = row("CADA-VAE (SynSE repo)", "text-KL weight k_fact2 vs smie msf kl_text (text_kl=msf)", "-")
    assert scan.figure.startswith("differs on 299/1700 steps (first at step 1401)"), scan.figure
    scan = row("CADA-VAE (SynSE repo)", "text-KL weight k_fact2 vs smie msf kl_text (text_kl=synse-cadavae)", "-")
    assert scan.status == "SAME" and scan.figure == "identical on 1700 steps", scan.figure
    gate = [r for r in rows if r.method == "MSF gate"]
    if gate and gate[0].status != "SKIP":
        assert row("MSF gate", "seen/unseen decisions").status == "SAME"
