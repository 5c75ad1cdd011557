"""Tests of the sparse autoencoder (aecourse.models.sae) and its loss: the top-t code
against a brute-force one, the L1 penalty against a hand computation, the unit-norm
dictionary through a training step, the errors of bad configs and inputs, and the
classifier's last layer on rebuilt features."""

from __future__ import annotations

import pytest
import torch

from aecourse.losses import l1_penalty, sae_loss
from aecourse.models import SAE, Classifier, ClassifierConfig, SAEConfig, top_k_code


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def brute_top_k(pre: torch.Tensor, t: int) -> torch.Tensor:
    """Row by row, entry by entry: keep an entry if fewer than t entries of its row are
    larger (no ties in continuous random draws), then clip at zero."""
    out = torch.zeros_like(pre)
    for b in range(pre.shape[0]):
        for j in range(pre.shape[1]):
            larger = sum(1 for v in pre[b].tolist() if v > pre[b, j].item())
            if larger < t:
                out[b, j] = max(pre[b, j].item(), 0.0)
    return out


@pytest.mark.parametrize("t", [1, 3, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_top_k_code_matches_brute_force(t, seed):
    pre = torch.randn(5, 12, generator=gen(seed))
    assert torch.equal(top_k_code(pre, t), brute_top_k(pre, t))


@pytest.mark.parametrize("t", [1, 4, 16])
def test_top_k_code_keeps_exactly_t_positive_entries(t):
    # positive pre-activations: every kept entry survives the ReLU
    pre = torch.rand(50, 32, generator=gen(2)) + 0.1
    z = top_k_code(pre, t)
    assert ((z != 0).sum(dim=1) == t).all()
    # the kept entries are the row's largest, with their values unchanged
    kept_min = torch.where(z > 0, z, torch.inf).min(dim=1).values
    dropped_max = torch.where(z == 0, pre, -torch.inf).max(dim=1).values
    assert (kept_min > dropped_max).all()
    assert torch.equal(z[z > 0], pre[z > 0])


def test_top_k_code_passes_gradients_to_the_kept_entries_only():
    pre = torch.randn(4, 10, generator=gen(3)).requires_grad_()
    z = top_k_code(pre, 3)
    z.sum().backward()
    assert torch.equal(pre.grad, (z > 0).float())


def test_sae_code_has_at_most_t_features_and_relu_code_is_non_negative():
    h = torch.randn(64, 8, generator=gen(4))
    torch.manual_seed(0)
    top = SAE(SAEConfig(input_dim=8, features=32, topk=5))
    z = top.encode(h)
    assert ((z > 0).sum(dim=1) <= 5).all() and (z >= 0).all()
    relu = SAE(SAEConfig(input_dim=8, features=32, topk=None))
    out = relu(h)
    assert (out.z >= 0).all() and out.z.shape == (64, 32) and out.h_hat.shape == (64, 8)
    # decode is the dictionary's combination of the atoms plus the bias
    expected = out.z @ relu.dictionary.T + relu.decoder.bias
    assert torch.allclose(out.h_hat, expected, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_penalty_matches_a_hand_computation(seed):
    z = torch.randn(6, 9, generator=gen(seed))
    by_hand = torch.tensor([sum(abs(v) for v in row) for row in z.tolist()])
    assert torch.allclose(l1_penalty(z), by_hand, atol=1e-6)


def test_sae_loss_is_squared_error_plus_alpha_l1():
    torch.manual_seed(0)
    model = SAE(SAEConfig(input_dim=6, features=20, topk=None))
    h = torch.randn(10, 6, generator=gen(5))
    loss = sae_loss(model, (h,), alpha=0.3)
    out = model(h)
    recon = sum(((a - b) ** 2).sum() for a, b in zip(out.h_hat, h)) / len(h)
    l1 = out.z.abs().sum() / len(h)
    assert torch.allclose(loss.total, recon + 0.3 * l1, atol=1e-5)
    assert torch.isclose(loss.terms["l0"], (out.z > 0).float().sum() / len(h))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        sae_loss(model, (h,), alpha=-1.0)
    with pytest.raises(ValueError, match="a ReLU code needs alpha > 0"):
        sae_loss(model, (h,), alpha=0.0)


@pytest.mark.parametrize("topk", [None, 4])
def test_dictionary_columns_stay_unit_norm_after_training_steps(topk):
    torch.manual_seed(0)
    model = SAE(SAEConfig(input_dim=8, features=24, topk=topk))
    h = torch.randn(128, 8, generator=gen(6)) * 3
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    before = model.dictionary.detach().clone()
    losses = []
    for _ in range(20):
        loss = sae_loss(model, (h,), alpha=0.01 if topk is None else 0.0)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(loss.total.item())
    norms = model.dictionary.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert not torch.allclose(model.dictionary, before)  # the atoms did move
    assert losses[-1] < losses[0]


def test_sae_save_and_load_round_trip(tmp_path):
    from aecourse.pretrained import load_pretrained, save_pretrained

    torch.manual_seed(0)
    model = SAE(SAEConfig(input_dim=8, features=16, topk=3)).eval()
    save_pretrained(model, "tiny-sae", tmp_path, data="fashion-mnist")
    loaded = load_pretrained("tiny-sae", weights_dir=tmp_path)
    h = torch.randn(5, 8, generator=gen(7))
    assert torch.equal(loaded(h).h_hat, model(h).h_hat)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (dict(topk=0), "topk must be None or an integer in"),
        (dict(features=8, topk=9), r"topk must be None or an integer in \[1, features=8\]"),
        (dict(topk=2.5), "topk must be None or an integer"),
        (dict(features=0), "features must be a positive integer"),
        (dict(input_dim=-1), "input_dim must be a positive integer"),
    ],
)
def test_bad_configs_are_rejected(config, match):
    with pytest.raises(ValueError, match=match):
        SAE(SAEConfig(**config))


def test_bad_inputs_are_rejected():
    model = SAE(SAEConfig(input_dim=8, features=16, topk=3))
    with pytest.raises(ValueError, match=r"shape \(B, 8\), got shape \(4, 7\)"):
        model(torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r"shape \(B, 8\)"):
        model(torch.zeros(8))
    with pytest.raises(ValueError, match="dtype torch.int64"):
        model(torch.zeros(4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"codes of shape \(B, 16\)"):
        model.decode(torch.zeros(4, 15))
    with pytest.raises(ValueError, match=r"t must be an integer in \[1, 12\]"):
        top_k_code(torch.zeros(2, 12), 13)
    with pytest.raises(ValueError, match=r"shape \(B, F\)"):
        top_k_code(torch.zeros(12), 3)
    with pytest.raises(ValueError, match=r"codes of shape \(B, F\)"):
        l1_penalty(torch.zeros(3))


def test_classify_is_the_last_layer_of_forward():
    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(channels=(8, 16), feature_dim=16)).eval()
    x = torch.rand(3, 1, 28, 28, generator=gen(8))
    assert torch.equal(classifier.classify(classifier.features(x)), classifier(x))
    with pytest.raises(ValueError, match=r"features of shape \(B, 16\)"):
        classifier.classify(torch.zeros(3, 15))
