"""The fast stage-two paths against the plain ones they replace, on fixed seeds.

- the latent classifier of the generative baselines (hand-written gradient and Adam) against the autograd loop
  of the SynSE/MSF/CADA-VAE codes, written out here as the reference;
- the SMIE critic's factorised first layer against the critic on concatenated pairs;
- the fused Adam against the plain one over a whole protocol run;
- a compare grid on two worker processes against the same grid in one process.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from smie.pipeline.zsl.baselines.vae import train_latent_classifier
from smie.pipeline.zsl.estimator import SMIEEstimator, jsd_terms, next_other_class

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_classifier(z, y, num_classes, epochs, lr, batch_size, seed, relu_output=False) -> nn.Module:
    """The codes' loop: nn.Linear (+ReLU), CrossEntropyLoss, torch.optim.Adam, autograd."""
    gen = torch.Generator().manual_seed(seed)
    fc = nn.Linear(z.shape[1], num_classes)
    with torch.no_grad():
        fc.weight.copy_(torch.empty_like(fc.weight).uniform_(-1, 1, generator=gen) * 0.5 * (
            6.0 / (fc.in_features + fc.out_features)) ** 0.5)
        fc.bias.zero_()
    clf = nn.Sequential(fc, nn.ReLU()) if relu_output else nn.Sequential(fc)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, betas=(0.5, 0.999) if batch_size > 0 else (0.9, 0.999))
    for _ in range(epochs):
        chunks = torch.randperm(z.shape[0], generator=gen).split(batch_size) if batch_size > 0 else [slice(None)]
        for idx in chunks:
            opt.zero_grad()
            nn.functional.cross_entropy(clf(z[idx]), y[idx]).backward()
            opt.step()
    return clf.eval()


@pytest.mark.parametrize("batch_size,relu", [(32, False), (0, True), (0, False)])
def test_latent_classifier_matches_the_autograd_loop(batch_size, relu):
    g = torch.Generator().manual_seed(3)
    K, L = 6, 16
    y = torch.arange(K).repeat_interleave(40)
    z = torch.randn(K, L, generator=g)[y] + 0.8 * torch.randn(len(y), L, generator=g)
    epochs = 25 if batch_size else 300
    fast = train_latent_classifier(z, y, K, epochs, 1e-3, batch_size, seed=5, relu_output=relu)
    slow = reference_classifier(z, y, K, epochs, 1e-3, batch_size, seed=5, relu_output=relu)
    torch.testing.assert_close(fast[0].weight, slow[0].weight, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast[0].bias, slow[0].bias, atol=2e-5, rtol=1e-4)
    with torch.no_grad():
        assert torch.equal(fast(z).argmax(1), slow(z).argmax(1))
    assert not any(p.requires_grad for p in fast.parameters()) and not fast.training


def reference_mi(model: SMIEEstimator, visual, sem, labels, masked):
    """SMIE's MI terms with the critic applied to each concatenated pair (the official code's way)."""
    v, s = model.ln(visual), nn.functional.normalize(sem, dim=-1)
    if model.negatives == "roll":
        t_neg, weight = model.critic(torch.roll(v, -1, 0), s), None
    elif model.negatives == "roll-diff-class":
        t_neg, weight = model.critic(v[next_other_class(labels)], s), None
    else:
        B = v.shape[0]
        t_neg = torch.stack([model.critic(v, s[k].expand(B, -1)) for k in range(B)], dim=1)
        weight = 1.0 - torch.eye(B)
        if model.negatives == "all-diff-class":
            weight = weight * (labels[:, None] != labels[None, :]).float()
    ej, em = jsd_terms(model.critic(v, s), t_neg, weight)
    masked_ej = -nn.functional.softplus(-model.critic(model.ln(masked), s)).mean()
    return ej - em, masked_ej - em


@pytest.mark.parametrize("negatives", ["roll", "roll-diff-class", "all", "all-diff-class"])
def test_factorised_critic_is_the_critic_on_concatenated_pairs(negatives):
    torch.manual_seed(0)
    B, D, E = 24, 20, 12
    model = SMIEEstimator(D, E, hidden=(64, 32), negatives=negatives)
    visual, masked = torch.randn(B, D), torch.randn(B, D)
    labels = torch.randint(4, (B,))
    sem = torch.randn(4, E)[labels]
    got = model.mutual_information(visual, sem, labels, masked)
    grads = torch.autograd.grad(sum(got), list(model.parameters()))
    want = reference_mi(model, visual, sem, labels, masked)
    want_grads = torch.autograd.grad(sum(want), list(model.parameters()))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, want_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _run(tmp_path, name, method):
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits
    from tests.test_baselines import write_caches

    d = tmp_path / name
    d.mkdir()
    visual, text = write_caches(d, seed=1)
    res = fit_splits(BaselineConfig(method, visual, text, d / "run", epochs=30, gzsl=True, device="cpu"))
    return res.summary


@pytest.mark.parametrize("method", ["smie-notemporal", "cadavae"])
def test_fused_adam_gives_the_plain_adams_results(tmp_path, monkeypatch, method):
    fast = _run(tmp_path, "fused", method)
    monkeypatch.setattr("smie.pipeline.zsl.fit.adam", lambda params, **kw: torch.optim.Adam(params, **kw))
    slow = _run(tmp_path, "plain", method)
    for key in ("zsl_acc", "zsl_last", "gzsl_h_stacking"):
        assert fast[key]["mean"] == pytest.approx(slow[key]["mean"], abs=0.02), key


def test_parallel_grid_gives_the_same_numbers_as_one_process(tmp_path):
    from smie.pipeline.zsl.compare import CompareConfig, compare
    from tests.test_baselines import write_caches

    folds = []
    for i, unseen in enumerate(((0, 1, 2, 3), (4, 5, 6, 7))):
        d = tmp_path / f"fold{i}"
        d.mkdir()
        folds.append(write_caches(d, seed=i, split_unseen=unseen))
    tables = []
    for jobs in (1, 2):
        cfg = CompareConfig(tuple(v for v, _ in folds), folds[0][1], tmp_path / f"cmp{jobs}",
                            methods=("devise", "smie", "cadavae"), device="cpu", epochs_scale=0.1, jobs=jobs)
        compare(cfg)
        tables.append(pd.read_csv(tmp_path / f"cmp{jobs}" / "runs.csv").drop(columns="seconds"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(tables[0]) == 6
