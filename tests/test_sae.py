"""Tests of the sparse autoencoder (aecourse.models.sae) and its loss: the top-t code
against a brute-force one, the L1 penalty against a hand computation, the unit-norm
dictionary through a training step, the errors of bad configs and inputs, and the
classifier's last layer on rebuilt features."""

from __future__ import annotations

import pytest
import torch

from aecourse.losses import l1_penalty, sae_loss
from aecourse.models import SAE, Classifier, ClassifierConfig, SAEConfig, aux_code, top_k_code


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


# --- the AuxK loss of dead features (Gao et al. 2024, A.2) ---------------------------


def aux_sae(seed: int = 0, **config) -> SAE:
    torch.manual_seed(seed)
    return SAE(SAEConfig(**{"input_dim": 6, "features": 12, "topk": 2, "dead_after": 5, **config}))


def test_counter_counts_training_inputs_since_each_feature_fired():
    model = aux_sae()
    h = torch.randn(3, 6, generator=gen(10))
    model.train()
    expected = torch.zeros(12, dtype=torch.long)
    for step in range(4):
        z = model(h).z
        fired = (z > 0).any(0)
        # by hand: every count grows by the batch, those that fired restart at zero
        expected = torch.where(fired, 0, expected + 3)
        assert torch.equal(model.inputs_since_fired, expected)
    assert (expected > 0).any()  # some features were silent: the test saw a count grow
    # the dead mask is the count against the window, whatever set it
    model.inputs_since_fired.copy_(torch.tensor([0, 4, 5, 6, 100, 0, 1, 2, 3, 4, 5, 9]))
    assert model.dead_mask().tolist() == [c >= 5 for c in model.inputs_since_fired.tolist()]
    # evaluation mode leaves the count alone
    model.eval()
    before = model.inputs_since_fired.clone()
    model(torch.randn(7, 6, generator=gen(11)))
    assert torch.equal(model.inputs_since_fired, before)


def brute_aux_code(pre: torch.Tensor, dead: torch.Tensor, k: int) -> torch.Tensor:
    """Row by row: among the dead entries, keep one if fewer than k dead entries are
    larger, then clip at zero."""
    out = torch.zeros_like(pre)
    for b in range(pre.shape[0]):
        for j in range(pre.shape[1]):
            if not dead[j]:
                continue
            larger = sum(1 for i in range(pre.shape[1]) if dead[i] and pre[b, i] > pre[b, j])
            if larger < k:
                out[b, j] = max(pre[b, j].item(), 0.0)
    return out


@pytest.mark.parametrize("k", [1, 2, 5])
def test_aux_code_uses_only_dead_features(k):
    pre = torch.randn(6, 10, generator=gen(12))
    dead = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1, 0], dtype=torch.bool)
    z = aux_code(pre, dead, k)
    assert torch.equal(z, brute_aux_code(pre, dead, k))
    assert (z[:, ~dead] == 0).all()
    # more than the dead features asked for: all of them, clipped at zero
    assert torch.equal(aux_code(pre, dead, 9), pre.clamp_min(0) * dead)
    assert (aux_code(pre, torch.zeros(10, dtype=torch.bool), k) == 0).all()


def test_aux_loss_value_on_a_hand_built_case():
    # 2-D activations, 4 features, top-1 code; atoms e_1, e_2, -e_1, (e_1+e_2)/sqrt 2
    model = SAE(SAEConfig(input_dim=2, features=4, topk=1, dead_after=1)).train()
    atoms = torch.tensor([[1.0, 0.0, -1.0, 0.5**0.5], [0.0, 1.0, 0.0, 0.5**0.5]])
    with torch.no_grad():
        model.decoder.parametrizations.weight.original.copy_(atoms)
        model.decoder.bias.copy_(torch.tensor([0.5, 0.0]))
        model.encoder.weight.copy_(atoms.T)
        model.encoder.bias.zero_()
    h = torch.tensor([[3.5, 2.0]])
    # by hand: pre = W_enc (h - b_dec) = (3, 2, -3, 5/sqrt 2 = 3.54); the top-1 code
    # keeps feature 4, h_hat = 3.54 (1, 1)/sqrt 2 + b_dec = (3, 2.5), e = (0.5, -0.5),
    # ||e||^2 = 0.5. Feature 4 fired; features 1-3 count 1 input: dead. The top-2 dead
    # pre-activations after the ReLU: features 1 (3) and 2 (2); feature 3 (-3) loses.
    # e_hat = 3 e_1 + 2 e_2 = (3, 2), ||e - e_hat||^2 = 2.5^2 + 2.5^2 = 12.5
    loss = sae_loss(model, (h,), alpha_aux=0.5, k_aux=2)
    assert torch.allclose(loss.terms["recon"], torch.tensor(0.5), atol=1e-5)
    assert torch.allclose(loss.terms["aux"], torch.tensor(12.5), atol=1e-5)
    assert torch.allclose(loss.total, torch.tensor(0.5 + 0.5 * 12.5), atol=1e-5)
    assert torch.allclose(loss.terms["dead"], torch.tensor(0.75))
    # k_aux = 1: feature 1 alone, e_hat = (3, 0), ||e - e_hat||^2 = 2.5^2 + 0.5^2
    model.inputs_since_fired.zero_()
    assert torch.allclose(sae_loss(model, (h,), alpha_aux=0.5, k_aux=1).terms["aux"],
                          torch.tensor(6.5), atol=1e-5)
    # k_aux = 3: feature 3 joins, but its ReLU is zero: as k_aux = 2
    assert torch.allclose(sae_loss(model, (h,), alpha_aux=0.5, k_aux=3).terms["aux"],
                          torch.tensor(12.5), atol=1e-5)


def test_aux_term_is_zero_when_no_feature_is_dead():
    model = aux_sae(dead_after=10**6).train()
    h = torch.randn(16, 6, generator=gen(13))
    loss = sae_loss(model, (h,), alpha_aux=1.0, k_aux=4)
    assert loss.terms["aux"].item() == 0.0
    assert torch.equal(loss.total, loss.terms["recon"])
    # every feature declared dead but the two that fire on the input: the term is positive
    model.inputs_since_fired.fill_(10**6)
    loss = sae_loss(model, (h[:1],), alpha_aux=1.0, k_aux=4)
    assert model.dead_mask().sum().item() == 12 - 2
    assert loss.terms["aux"].item() > 0


def test_gradients_reach_dead_encoder_rows_only_through_the_aux_term():
    h = torch.randn(32, 6, generator=gen(14))
    grads = {}
    for alpha_aux in (0.0, 1 / 32):
        model = aux_sae(dead_after=1000).train()  # 4-11 stay live (counts < 1000)
        with torch.no_grad():  # features 0-3 lose the top-2 to two very large ones
            model.encoder.bias[4:6] = 100.0
        model.inputs_since_fired[:4] = 10**6
        loss = sae_loss(model, (h,), alpha_aux=alpha_aux, k_aux=4)
        assert model.dead_mask().tolist() == [True] * 4 + [False] * 8
        assert (model(h).z[:, :4] == 0).all()  # never in the code: no gradient from recon
        loss.total.backward()
        grads[alpha_aux] = model.encoder.weight.grad.norm(dim=1)
    assert (grads[0.0][:4] == 0).all()
    assert (grads[1 / 32][:4] > 0).all()
    # the live features' rows get the same gradient either way: e is held fixed
    assert torch.allclose(grads[0.0][4:], grads[1 / 32][4:])


def test_aux_loss_arguments_are_checked():
    model = aux_sae()
    plain = SAE(SAEConfig(input_dim=6, features=12, topk=2))
    h = torch.randn(4, 6, generator=gen(15))
    with pytest.raises(ValueError, match="alpha_aux must be >= 0"):
        sae_loss(model, (h,), alpha_aux=-1.0, k_aux=2)
    with pytest.raises(ValueError, match="needs k_aux"):
        sae_loss(model, (h,), alpha_aux=0.1)
    with pytest.raises(ValueError, match="dead_after=None"):
        sae_loss(plain, (h,), alpha_aux=0.1, k_aux=2)
    with pytest.raises(ValueError, match="keeps no count"):
        plain.dead_mask()
    with pytest.raises(ValueError, match="dead_after must be None or a positive integer"):
        SAE(SAEConfig(dead_after=0))
    with pytest.raises(ValueError, match="k_aux must be a positive integer"):
        aux_code(torch.zeros(2, 12), torch.ones(12, dtype=torch.bool), 0)
    with pytest.raises(ValueError, match=r"bool mask of shape \(12,\)"):
        aux_code(torch.zeros(2, 12), torch.ones(11, dtype=torch.bool), 2)


def test_aux_sae_save_and_load_round_trip_keeps_the_count(tmp_path):
    from aecourse.pretrained import load_pretrained, save_pretrained

    model = aux_sae().train()
    model(torch.randn(9, 6, generator=gen(16)))
    model.eval()
    save_pretrained(model, "tiny-sae-aux", tmp_path, data="fashion-mnist")
    loaded = load_pretrained("tiny-sae-aux", weights_dir=tmp_path)
    assert torch.equal(loaded.inputs_since_fired, model.inputs_since_fired)
