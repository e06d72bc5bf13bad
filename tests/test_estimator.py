"""SMIE estimator: JSD estimate, negatives, temporal hinge and pairwise scores against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams, jsd_terms, temporal_hinge
from smie.pipeline.zsl.method import Batch


def _model(negatives="roll", **kw):
    torch.manual_seed(0)
    return SMIEEstimator(4, 3, SMIEParams(hidden=(8, 6), negatives=negatives, **kw)).double()


def _hand_T(model, v, s):
    """The critic by hand in numpy: relu(relu([v,s] W0' + b0) W1' + b1) W2' + b2."""
    p = {k: t.detach().numpy() for k, t in model.state_dict().items()}
    x = np.concatenate([v, s], axis=-1)
    h = np.maximum(x @ p["l0.weight"].T + p["l0.bias"], 0)
    h = np.maximum(h @ p["l1.weight"].T + p["l1.bias"], 0)
    return (h @ p["l2.weight"].T + p["l2.bias"])[..., 0]


def _hand_ln(v):
    return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)


def _softplus(x):
    return np.log1p(np.exp(x))


def _batch(B=4, seed=1):
    g = np.random.default_rng(seed)
    v, s = g.normal(size=(B, 4)), g.normal(size=(B, 3))
    return v, s / np.linalg.norm(s, axis=1, keepdims=True)


def test_jsd_terms_on_known_values():
    ej, em = jsd_terms(torch.tensor([0.0]), torch.tensor([0.0]))
    assert float(ej - em) == pytest.approx(-2 * math.log(2))
    ej, em = jsd_terms(torch.tensor([2.0, -1.0]), torch.tensor([[0.0, 5.0], [1.0, 0.0]]),
                       torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert float(ej) == pytest.approx(-(_softplus(-2.0) + _softplus(1.0)) / 2)
    assert float(em) == pytest.approx((_softplus(5.0) + _softplus(1.0)) / 2)


def test_temporal_hinge_by_hand():
    g, m = torch.tensor(1.0), torch.tensor(0.95)
    assert float(temporal_hinge(g, m, alpha=0.1, lam=0.5)) == pytest.approx(-1.0 + 0.5 * 0.05)
    assert float(temporal_hinge(g, torch.tensor(0.5), alpha=0.1, lam=0.5)) == pytest.approx(-1.0)
    assert float(temporal_hinge(g, torch.tensor(1.2), alpha=0.5, lam=2.0)) == pytest.approx(-1.0 + 2.0 * 0.7)


def test_layer_norm_matches_torch_layernorm():
    from smie.pipeline.zsl.compute import Compute, layer_norm, using

    x = torch.randn(5, 7, dtype=torch.float64) * 3 + 1
    ref = torch.nn.LayerNorm([7], elementwise_affine=False).double()(x)
    assert torch.allclose(layer_norm(x), ref, atol=1e-10)
    with using(Compute(layer_norm="torch")):
        assert torch.allclose(layer_norm(x), ref, atol=1e-10)


def test_global_mi_roll_negatives_match_official_formula():
    model = _model()
    v, s = _batch()
    lv = _hand_ln(v)
    fake = np.concatenate([lv[1:], lv[:1]])  # official: torch.cat((visual[1:], visual[0:1]))
    want = np.mean(-_softplus(-_hand_T(model, lv, s))) - np.mean(_softplus(_hand_T(model, fake, s)))
    mi, none = model.mutual_information(torch.tensor(v), torch.tensor(s), torch.arange(4))
    assert none is None
    assert float(mi.detach()) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("negatives", ["all", "all-diff-class"])
def test_all_negative_variants_by_hand(negatives):
    model = _model(negatives)
    v, s = _batch()
    labels = np.array([0, 0, 1, 2])
    lv = _hand_ln(v)
    neg = []
    for i in range(4):
        for j in range(4):
            if i != j and (negatives == "all" or labels[i] != labels[j]):
                neg.append(_softplus(_hand_T(model, lv[j], s[i])))
    want = np.mean(-_softplus(-_hand_T(model, lv, s))) - np.mean(neg)
    mi, _ = model.mutual_information(torch.tensor(v), torch.tensor(s), torch.tensor(labels))
    assert float(mi.detach()) == pytest.approx(want, rel=1e-9)


def test_temporal_loss_uses_masked_positives_and_unmasked_negatives():
    model = _model(alpha=0.3, lam=0.5)
    v, s = _batch()
    vm = v + np.random.default_rng(5).normal(size=v.shape)
    lv, lm = _hand_ln(v), _hand_ln(vm)
    em = np.mean(_softplus(_hand_T(model, np.roll(lv, -1, axis=0), s)))
    mi_g = np.mean(-_softplus(-_hand_T(model, lv, s))) - em
    mi_m = np.mean(-_softplus(-_hand_T(model, lm, s))) - em
    want = -mi_g + 0.5 * max(0.0, 0.3 - (mi_g - mi_m))
    class_sem = torch.tensor(s)
    batch = Batch(torch.tensor(v), torch.tensor(vm), torch.arange(4), class_sem)
    assert float(model.loss(batch).detach()) == pytest.approx(want, rel=1e-9)
    model.temporal = False
    assert float(model.loss(batch).detach()) == pytest.approx(-mi_g, rel=1e-9)


def test_loss_indexes_class_semantics_and_normalises_them():
    model = _model()
    v, s = _batch(B=3)
    class_sem = torch.tensor(np.stack([s[2], s[0], s[1]]) * 7.0)
    batch = Batch(torch.tensor(v), None, torch.tensor([1, 2, 0]), class_sem)
    model.temporal = False
    mi, _ = model.mutual_information(torch.tensor(v), torch.tensor(s), torch.arange(3))
    assert float(model.loss(batch).detach()) == pytest.approx(-float(mi.detach()), rel=1e-9)


def test_temporal_without_masked_views_is_refused():
    model = _model()
    v, s = _batch()
    with pytest.raises(ValueError, match="masked views"):
        model.loss(Batch(torch.tensor(v), None, torch.arange(4), torch.tensor(s)))


def test_scores_are_critic_on_every_pair_and_chunking_is_exact():
    model = _model()
    v, _ = _batch(B=5)
    _, s = _batch(B=3, seed=9)
    want = _hand_T(model, _hand_ln(v)[:, None, :].repeat(3, 1), np.broadcast_to(s, (5, 3, 3)))
    got = model.scores(torch.tensor(v), torch.tensor(s) * 4.0).detach().numpy()
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    model.score_chunk = 1
    np.testing.assert_allclose(model.scores(torch.tensor(v), torch.tensor(s)).detach().numpy(), want, rtol=1e-9)


def test_official_ranking_is_preserved():
    """get_acc in the official code ranks -softplus(-T); T ranks the same."""
    model = _model()
    v, _ = _batch(B=6)
    _, s = _batch(B=4, seed=3)
    t = model.scores(torch.tensor(v), torch.tensor(s))
    assert torch.equal(t.argmax(1), (-F.softplus(-t)).argmax(1))


def test_invalid_options_are_user_errors():
    with pytest.raises(SmieError, match="negatives must be one of roll, roll-diff-class, all, all-diff-class"):
        SMIEEstimator(4, 3, SMIEParams(negatives="bad"))
    with pytest.raises(SmieError, match="hidden"):
        SMIEEstimator(4, 3, SMIEParams(hidden=(8, 6, 4)))


def test_roll_diff_class_negatives_never_pair_a_sample_with_its_own_class():
    from smie.pipeline.zsl.estimator import next_other_class

    labels = torch.tensor([0, 0, 1, 1, 1, 2, 0, 2])
    idx = next_other_class(labels)
    assert idx.tolist() == [2, 2, 5, 5, 5, 6, 7, 0]
    assert (labels[idx] != labels).all()
    assert next_other_class(torch.tensor([3, 3, 3])).tolist() == [1, 2, 0]
    torch.manual_seed(0)
    est = SMIEEstimator(8, 4, SMIEParams(hidden=(16, 8), negatives="roll-diff-class"))
    mi, _ = est.mutual_information(torch.randn(8, 8), torch.randn(8, 4), labels)
    assert torch.isfinite(mi)


def test_score_on_raw_is_get_acc_and_differs_from_layernorm():
    """A hand-computed critic where LayerNorm flips the ranking: D=2, E=2, hidden (2, 1).

    l0 = [[1,0,2,0],[0,0,0,1]] x + [-4,-0.5], l1 = [1,1], l2 = [1]; v = [3,1], s = I.
    raw v: class 0 -> relu([3-4+2, -0.5]) = [1, 0] -> 1.0; class 1 -> relu([-1, 0.5]) = [0, .5] -> 0.5: argmax 0.
    LN(v) = [1,-1]: class 0 -> relu([-3+2, -.5]) = 0; class 1 -> relu([-3, .5]) -> 0.5: argmax 1.
    The official get_acc ranks -softplus(-T(raw v, s)), i.e. the raw ranking."""
    import torch

    from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams

    def critic(score_on):
        m = SMIEEstimator(2, 2, SMIEParams(hidden=(2, 1), score_on=score_on)).double()
        state = m.state_dict()
        w0 = torch.tensor([[1.0, 0, 2, 0], [0, 0, 0, 1]], dtype=torch.float64)
        new = {}
        for k, v in state.items():
            if k.startswith("l0") and k.endswith("weight"):
                new[k] = w0
            elif k.startswith("l0") and k.endswith("bias"):
                new[k] = torch.tensor([-4.0, -0.5], dtype=torch.float64)
            elif k.startswith("l1") and k.endswith("weight"):
                new[k] = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
            elif k.startswith("l2") and k.endswith("weight"):
                new[k] = torch.tensor([[1.0]], dtype=torch.float64)
            else:
                new[k] = torch.zeros_like(v)
        m.load_state_dict(new)
        return m

    v, sem = torch.tensor([[3.0, 1.0]], dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    raw = critic("raw").scores(v, sem)
    ln = critic("layernorm").scores(v, sem)
    assert torch.allclose(raw, torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    assert torch.allclose(ln, torch.tensor([[0.0, 0.5]], dtype=torch.float64), atol=1e-4)
    assert raw.argmax().item() == 0 and ln.argmax().item() == 1
    get_acc = -torch.nn.functional.softplus(-raw)          # the official ranking: same argmax as raw
    assert get_acc.argmax().item() == raw.argmax().item()
    with pytest.raises(Exception, match="score_on"):
        SMIEParams(score_on="lnorm")
