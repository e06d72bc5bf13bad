"""The fast stage-two paths against the plain ones they replace, on fixed seeds.

- the latent classifier of the generative baselines (hand-written gradient and Adam) against the autograd loop
  of the SynSE/MSF/CADA-VAE codes, written out here as the reference;
- the SMIE critic's factorised first layer against the critic on concatenated pairs;
- class texts encoded once per class (MSF, SynSE, JPoSE, ReViSE, SMIE) against one encoding per sample, and
  the generative losses without their zero-weighted terms against the codes' losses with every term;
- smie's oneDNN Linear against nn.Linear, SMIE's split first layer against one sliced weight, the written-out
  layer norm against torch's (every switch of ``smie.pipeline.zsl.compute.Compute``);
- the heap kept by stage two: scoring after it takes no page faults;
- the fused Adam against the plain one over a whole protocol run;
- a compare grid on two worker processes against the same grid in one process.
"""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

from smie.pipeline.zsl.baselines.vae import train_latent_classifier
from smie.pipeline.zsl.compute import Compute, layer_norm, using
from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams, jsd_terms, next_other_class
from smie.pipeline.zsl.spec import method_spec

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
    v, s = layer_norm(visual), nn.functional.normalize(sem, dim=-1)
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
    if masked is None:
        return (ej - em,)
    masked_ej = -nn.functional.softplus(-model.critic(layer_norm(masked), s)).mean()
    return ej - em, masked_ej - em


@pytest.mark.parametrize("with_masked", [True, False])
@pytest.mark.parametrize("negatives", ["roll", "roll-diff-class", "all", "all-diff-class"])
def test_factorised_critic_is_the_critic_on_concatenated_pairs(negatives, with_masked):
    torch.manual_seed(0)
    B, D, E = 24, 20, 12
    model = SMIEEstimator(D, E, SMIEParams(hidden=(64, 32), negatives=negatives))
    visual, masked = torch.randn(B, D), torch.randn(B, D) if with_masked else None
    labels = torch.randint(4, (B,))
    table = torch.randn(4, E)
    sem = table[labels]
    want = reference_mi(model, visual, sem, labels, masked)
    want_grads = torch.autograd.grad(sum(want), list(model.parameters()))
    for got in (model.mutual_information(visual, sem, labels, masked),
                model.mutual_information(visual, table, labels, masked, sem_index=labels)):
        got = got if with_masked else got[:1]
        grads = torch.autograd.grad(sum(got), list(model.parameters()))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        for a, b in zip(grads, want_grads):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _batch(B=24, D=20, K=5, E=12, seed=0):
    from smie.pipeline.zsl.method import Batch

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(K, (B,), generator=g)
    return Batch(torch.randn(B, D, generator=g), None, labels, torch.randn(K, E, generator=g))


def _loss_and_grads(model, batch, reference=None):
    torch.manual_seed(7)
    loss = model.loss(batch) if reference is None else reference(model, batch)
    return loss, torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)


def _assert_same(got, want):
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(got[1], want[1]):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def msf_rows(model, b):
    """MSF's loss as its code computes it: the text encoder on each sample's class text."""
    from smie.pipeline.zsl.baselines.vae import cycle_weights, kl_divergence, reparameterize

    F = nn.functional
    w = cycle_weights(int(model.step), model.cycle_length, model.cycle_base)
    x, t = b.visual, F.normalize(b.class_sem[b.labels], dim=-1)
    (mu_v, lv_v), (mu_t, lv_t) = model.enc_v(x), model.enc_t(t)
    z_v, z_t = reparameterize(mu_v, lv_v), reparameterize(mu_t, lv_t)
    loss = F.mse_loss(model.dec_v(z_v), x) + F.mse_loss(model.dec_t(z_t), t)
    loss = loss + w["kl_visual"] * kl_divergence(mu_v, lv_v) + w["kl_text"] * kl_divergence(mu_t, lv_t)
    return loss + w["cross"] * (F.mse_loss(model.dec_v(z_t), x) + F.mse_loss(model.dec_t(z_v), t))


def synse_rows(model, b):
    """SynSE's loss as its code computes it: the verb and noun encoders on each sample's class text."""
    from smie.pipeline.zsl.baselines.synse import split_pos
    from smie.pipeline.zsl.baselines.vae import cycle_weights, kl_divergence, reparameterize

    mse = nn.functional.mse_loss
    w = cycle_weights(int(model.step), model.cycle_length, model.cycle_base)
    half, s = model.latent // 2, b.visual
    verb, noun = split_pos(b.class_sem[b.labels])
    mu_s, lv_s = model.enc_s(s)
    z_s = reparameterize(mu_s, lv_s)
    (mu_n, lv_n), (mu_v, lv_v) = model.enc_noun(noun), model.enc_verb(verb)
    z_n, z_v = reparameterize(mu_n, lv_n), reparameterize(mu_v, lv_v)
    rec = mse(model.dec_s(z_s), s) + mse(model.dec_noun(z_n), noun) + mse(model.dec_verb(z_v), verb)
    kld = w["kl_visual"] * kl_divergence(mu_s, lv_s) + w["kl_text"] * (kl_divergence(mu_n, lv_n) +
                                                                      kl_divergence(mu_v, lv_v))
    cross = (mse(model.dec_noun(z_s[:, :half]), noun) + mse(model.dec_verb(z_s[:, half:]), verb)
             + mse(model.dec_s(torch.cat([z_n, z_v], 1)), s))
    return rec + kld + w["cross"] * cross


def cadavae_rows(model, b):
    """CADA-VAE's loss as its code computes it: every term at every step, zero-weighted or not."""
    from smie.pipeline.zsl.baselines.vae import kl_divergence, reparameterize, wasserstein

    x, s, w = b.visual, b.class_sem[b.labels], model.weights()
    (mu_v, lv_v), (mu_t, lv_t) = model.enc_v(x), model.enc_t(s)
    z_v, z_t = reparameterize(mu_v, lv_v), reparameterize(mu_t, lv_t)
    l1 = nn.functional.l1_loss
    rec = l1(model.dec_v(z_v), x, reduction="sum") + l1(model.dec_t(z_t), s, reduction="sum")
    cross = l1(model.dec_v(z_t), x, reduction="sum") + l1(model.dec_t(z_v), s, reduction="sum")
    kld = (kl_divergence(mu_v, lv_v) + kl_divergence(mu_t, lv_t)) * x.shape[0]
    return rec + w["beta"] * kld + w["cross"] * cross + w["distance"] * wasserstein(mu_v, lv_v, mu_t, lv_t).sum()


@pytest.mark.parametrize("step", [3, 29])
@pytest.mark.parametrize("method,reference", [("msf", msf_rows), ("synse", synse_rows), ("cadavae", cadavae_rows)])
def test_generative_losses_match_the_codes(method, reference, step):
    """The generative baselines encode each class text once and index the rows, and skip the terms whose
    schedule weight is 0 (step 3: cross-reconstruction and KL off; step 29: all on): same loss and gradients as
    the codes' loss on every sample's text with every term (same noise draws: the seed is reset, and the draws
    keep their order)."""
    torch.manual_seed(0)
    options = dict(latent=8) if method == "cadavae" else dict(latent=8, cycle_length=10)
    model = method_spec(method).build(20, 12, **options)
    batch = _batch()
    model.step.fill_(step)  # CADA-VAE: one step per epoch, so step 3 is in every warm-up's zero stretch but beta's
    want = _loss_and_grads(model, batch, reference)
    model.step.fill_(step)
    _assert_same(_loss_and_grads(model, batch), want)


def test_jpose_and_revise_class_texts_encoded_once():
    """JPoSE and ReViSE against their per-sample losses, written out here as the codes compute them."""
    import torch.nn.functional as F

    from smie.pipeline.zsl.baselines.losses import gaussian_mmd, hardest_triplet, multi_class_hinge

    batch = _batch(E=16)
    torch.manual_seed(0)
    jpose = method_spec("jpose").build(20, 16, out=6, text_hidden=10)

    def jpose_rows(b):
        with torch.no_grad():
            cv, cn, cj = jpose._text(b.class_sem)
            ids = [torch.unique(h, dim=0, return_inverse=True)[1][b.labels] for h in b.class_sem.split(8, dim=1)]
        tv, tn, _ = jpose._text(b.class_sem[b.labels])
        vv, vn, vj = jpose._visual(b.visual)
        tj = F.normalize(jpose.joint_text(torch.cat([tv, tn], 1)), dim=-1)
        m = jpose.margin
        loss = multi_class_hinge(vv, tv, cv, m) + multi_class_hinge(vn, tn, cn, m)
        loss = loss + jpose.triplet_weight * (hardest_triplet(vv, ids[0], m) + hardest_triplet(vn, ids[1], m))
        return loss + multi_class_hinge(vj, tj, cj, m)

    revise = method_spec("revise").build(20, 16, visual_hidden=12, hidden=8, out=6)

    def revise_rows(b):
        x = revise._prep(b.visual).detach().requires_grad_(True)
        vh, vrec, vemb = revise.vis(x)
        jac = torch.autograd.grad(vh.sum(), x, create_graph=True)[0]
        vis_rec = ((vrec - x) ** 2).mean() + revise.gamma * jac.pow(2).sum().sqrt()
        t = b.class_sem[b.labels]
        th, trec, temb = revise.att(t)
        with torch.no_grad():
            class_emb = revise.att(b.class_sem)[2]
        return multi_class_hinge(vemb, temb, class_emb, revise.margin) + vis_rec + ((trec - t) ** 2).mean() + \
            gaussian_mmd(vh, th, revise.mmd_k)

    for model, reference in ((jpose, jpose_rows), (revise, revise_rows)):
        _assert_same(_loss_and_grads(model, batch), _loss_and_grads(model, batch, lambda m, b: reference(b)))


def _run(tmp_path, name, method, stage_caches, compute=Compute()):
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits

    d = tmp_path / name
    d.mkdir()
    visual, text = stage_caches(d, seed=1)
    res = fit_splits(BaselineConfig(method, visual, text, d / "run", epochs=12, gzsl=True, device="cpu",
                                    compute=compute, budget="code-epochs"))  # the optimiser is the point
    return res.summary


@pytest.mark.parametrize("method", ["smie-notemporal", "cadavae"])
def test_fused_adam_gives_the_plain_adams_results(tmp_path, monkeypatch, method, stage_caches):
    fast = _run(tmp_path, "fused", method, stage_caches)
    plain = torch.optim.Adam
    made = []
    monkeypatch.setattr(torch.optim, "Adam", lambda params, **kw: made.append(kw["fused"]) or plain(params, **kw))
    slow = _run(tmp_path, "plain", method, stage_caches, Compute(fused_adam=False))
    assert made and not any(made), "the run did not build the plain Adam"
    for key in ("zsl", "zsl_last", "h"):
        assert fast[key]["mean"] == pytest.approx(slow[key]["mean"], abs=0.02), key


@pytest.mark.slow  # a whole compare grid twice (~70 s on 2 busy cores)
def test_parallel_grid_gives_the_same_numbers_as_one_process(tmp_path, stage_caches):
    from smie.pipeline.zsl.compare import CompareConfig, compare

    folds = []
    for i, unseen in enumerate(((0, 1, 2, 3), (4, 5, 6, 7))):
        d = tmp_path / f"fold{i}"
        d.mkdir()
        folds.append(stage_caches(d, seed=i, split_unseen=unseen))
    tables = []
    for jobs in (1, 2):
        cfg = CompareConfig(tuple(v for v, _ in folds), folds[0][1], tmp_path / f"cmp{jobs}",
                            methods=("devise", "smie", "cadavae"), device="cpu", epochs_scale=0.1, jobs=jobs)
        compare(cfg)
        tables.append(pd.read_csv(tmp_path / f"cmp{jobs}" / "runs.csv").drop(columns="seconds"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(tables[0]) == 6


def test_onednn_linear_is_nn_linear(monkeypatch):
    """smie's Linear: nn.Linear's parameters and init; on CPU float32 above MIN_MACS its products (forward,
    backward and double backward, ReViSE's case) go through oneDNN and agree with torch's to float rounding."""
    from smie.pipeline.zsl import compute as L

    torch.manual_seed(0)
    ours = L.Linear(256, 512)
    torch.manual_seed(0)
    plain = nn.Linear(256, 512)
    assert torch.equal(ours.weight, plain.weight) and torch.equal(ours.bias, plain.bias)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    assert L.kernel_works(), "the oneDNN kernel is in every x86 CPU build of torch"
    forced = Compute(matmul="onednn")
    assert L.matmul_backend(forced) == "onednn"
    assert L.matmul_backend(Compute()) == ("onednn" if L.has_avx512() else "torch")
    x = torch.randn(3, 32, 256, requires_grad=True)  # 96 x 256 x 512 multiply-adds, above MIN_MACS
    calls, kernel = [], L._kernel()
    monkeypatch.setattr(L, "_kernel", lambda: lambda *a: calls.append(1) or kernel(*a))
    results = []
    for layer in (ours, plain):
        with using(forced):
            y = layer(x)
            grads = torch.autograd.grad(y.pow(2).sum(), (x, layer.weight, layer.bias), create_graph=True)
            second = torch.autograd.grad(sum(g.pow(2).sum() for g in grads), (x, layer.weight))
        results.append((y, *grads, *second))
    assert len(calls) >= 5, "the oneDNN path did not run forward, backward and double backward"
    for a, b in zip(*results):
        assert float((a - b).detach().norm() / b.detach().norm()) < 1e-5


def test_onednn_linear_falls_back(monkeypatch):
    """Small products, float64, column slices (copied to a dense layout) and compute matmul 'torch'; a bad value
    of any switch is the same user error."""
    from smie.features.store import SmieError
    from smie.pipeline.zsl import compute as L

    w = torch.randn(512, 600)[:, :256]
    x = torch.randn(64, 256)
    with using(Compute(matmul="onednn")):
        torch.testing.assert_close(L.linear(x, w), x @ w.T, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(L.mm(x.double(), w.T.double()), x.double() @ w.T.double())
        monkeypatch.setattr(L, "_OneDNNLinear", None)  # any use of the oneDNN path would now fail
        L.linear(torch.randn(4, 8), torch.randn(3, 8))
    with using(Compute(matmul="torch")):
        assert L.matmul_backend() == "torch"
        torch.testing.assert_close(L.linear(x, w), x @ w.T)
    for switch, value in (("matmul", "fast"), ("heap", "huge"), ("layer_norm", "quick")):
        with pytest.raises(SmieError, match=f"compute {switch} must be one of"):
            Compute(**{switch: value})


def test_concat_linear_is_an_nn_linear_on_the_concatenation():
    """SMIE's first layer keeps its weight as two column blocks: same init, same state_dict (loadable both
    ways), same function as nn.Linear on concat(a, b)."""
    from smie.pipeline.zsl.compute import ConcatLinear

    torch.manual_seed(0)
    ours = ConcatLinear(6, 10, 8)
    torch.manual_seed(0)
    plain = nn.Linear(16, 8)
    state = ours.state_dict()
    assert list(state) == list(plain.state_dict()) == ["weight", "bias"]
    torch.testing.assert_close(state["weight"], plain.weight.detach(), rtol=0, atol=0)
    a, b = torch.randn(5, 6), torch.randn(5, 10)
    torch.testing.assert_close(ours(torch.cat((a, b), 1)), plain(torch.cat((a, b), 1)))
    other = nn.Linear(16, 8)
    ours.load_state_dict(other.state_dict())
    torch.testing.assert_close(ours.weight, other.weight.detach(), rtol=0, atol=0)
    plain.load_state_dict(ours.state_dict())
    torch.testing.assert_close(plain.weight, other.weight, rtol=0, atol=0)
    with using(Compute(split_first_layer=False)):
        torch.manual_seed(0)
        joined = ConcatLinear(6, 10, 8)
    torch.manual_seed(0)
    fresh = nn.Linear(16, 8)
    assert list(joined.state_dict()) == ["weight", "bias"]
    torch.testing.assert_close(joined.state_dict()["weight"], state["weight"], rtol=0, atol=0)
    torch.testing.assert_close(joined(torch.cat((a, b), 1)), fresh(torch.cat((a, b), 1)))
    joined.load_state_dict(other.state_dict())
    torch.testing.assert_close(joined.weight, other.weight.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("switch", [dict(split_first_layer=False), dict(layer_norm="torch"), dict(matmul="onednn"),
                                    dict(matmul="torch"), dict(fused_adam=False)])
def test_every_speed_path_trains_smie_to_the_same_weights(switch, world):
    """SMIE trained for a few epochs with every speed path on, and with one switched off: the same weights and
    losses to float rounding."""
    from smie.pipeline.zsl.fit import FitOptions, train_method
    from smie.pipeline.zsl.method import TrainSet

    sem, feats, masked, labels = world(0, D=64, E=32, per=20)
    train = TrainSet(feats, masked, labels, sem)
    results = []
    for compute in (Compute(), Compute(**switch)):
        with using(compute):
            torch.manual_seed(0)
            model = SMIEEstimator(64, 32, SMIEParams(hidden=(256, 128)))
            losses = train_method(model, train, FitOptions(epochs=3, batch_size=128, lr=1e-3, warmup=1, seed=0))
        results.append((losses, model.state_dict()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4, abs=1e-5)
    for key, value in results[0][1].items():
        torch.testing.assert_close(results[1][1][key], value, atol=1e-4, rtol=1e-3)


def test_grid_queues_the_longest_runs_first():
    from smie.pipeline.registry import METHODS
    from smie.pipeline.zsl.grid import RUN_SECONDS, longest_first

    assert set(RUN_SECONDS) <= set(METHODS), "RUN_SECONDS is keyed by registered method names"

    items = [("devise", "f0"), ("cadavae", "f0"), ("smie-fusion", "f0"), ("devise", "f1"), ("cadavae", "f1")]
    assert longest_first(items) == [2, 1, 4, 0, 3]


HEAP_CHILD = """
import resource, sys, torch
from smie.pipeline.zsl.compute import Compute, apply_heap, heap_mode
from smie.pipeline.zsl.estimator import SMIEEstimator
assert heap_mode() == "system"
mode = apply_heap(Compute(heap=sys.argv[1]))
m = SMIEEstimator(256, 768)
x, s = torch.randn(128, 256), torch.randn(10, 768)
faults = []
with torch.no_grad():
    for _ in range(25):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        m.scores(x, s)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(mode, sorted(faults[5:])[10], faults)
"""


@pytest.mark.slow  # counts page faults over whole training runs (~20 s)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_heap_takes_no_page_faults_per_step():
    """With the heap kept, a scoring pass (5 MB of temporaries) reuses freed memory instead of faulting in fresh
    pages (glibc's defaults: ~2,500 faults per pass here); ``heap="system"`` leaves glibc alone and a bad value
    is refused."""
    def child(value):
        return subprocess.run([sys.executable, "-c", HEAP_CHILD, value], capture_output=True, text=True,
                              timeout=120)

    kept = child("keep")
    assert kept.returncode == 0, kept.stderr
    mode, median = kept.stdout.split()[:2]
    assert mode == "keep" and int(median) < 10, kept.stdout
    system = child("system")
    assert system.returncode == 0, system.stderr
    assert system.stdout.split()[0] == "system"
    bad = child("huge")
    assert bad.returncode != 0 and "compute heap must be one of keep, system" in bad.stderr
