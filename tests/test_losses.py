"""Tests of aecourse.losses: each primitive against torch.distributions or a Monte Carlo
estimate, each training objective for its terms, and a few optimiser steps that must
lower every loss on a small real batch of Fashion-MNIST."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from aecourse import losses
from aecourse.data import binarize
from aecourse.losses import (
    Loss,
    ae_loss,
    bernoulli_nll,
    classifier_loss,
    dae_loss,
    decoder_nll,
    elbo,
    gaussian_kl,
    gaussian_nll,
    mse,
    prior_loss,
    vae_loss,
    vqvae_loss,
)
from aecourse.models import (
    AE,
    DAE,
    VAE,
    VQVAE,
    AEConfig,
    AEOutput,
    Classifier,
    ClassifierConfig,
    DAEConfig,
    Prior,
    PriorConfig,
    VAEConfig,
    VAEOutput,
    VQVAEConfig,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = 4, c: int = 1, s: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand((b, c, s, s), generator=gen(seed))


@pytest.fixture(scope="module")
def fashion():
    """256 real training images and labels (the Debian IDX files, or torchvision)."""
    from aecourse.data import load

    try:
        data = load("fashion-mnist", "train").subset(256)
    except (FileNotFoundError, RuntimeError) as err:  # no data on this machine
        pytest.skip(f"Fashion-MNIST not available: {err}")
    return data.x, data.y


# --- primitives: the closed-form KL ------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dim", [1, 2, 16])
def test_gaussian_kl_matches_torch_distributions(seed, dim):
    g = gen(seed)
    mu = 2 * torch.randn((5, dim), generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn((5, dim), generator=g, dtype=torch.float64)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (5,)
    torch.testing.assert_close(kl.double(), reference, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_matches_monte_carlo():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated with many samples; the closed form
    must lie within a few standard errors of the estimate."""
    mu = torch.tensor([[0.7, -1.2, 0.1], [0.0, 0.3, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.4, 0.0], [1.0, -1.5, 0.2]], dtype=torch.float64)
    n = 200_000
    q = Normal(mu, (0.5 * logvar).exp())
    torch.manual_seed(0)
    z = q.sample((n,))  # (n, 2, 3)
    log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (n, 2)
    estimate = log_ratio.mean(0)
    standard_error = log_ratio.std(0) / math.sqrt(n)
    kl = gaussian_kl(mu, logvar).double()
    assert ((kl - estimate).abs() < 5 * standard_error).all(), (kl, estimate, standard_error)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert torch.equal(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    g = gen(3)
    mu = 3 * torch.randn((1000, 4), generator=g)
    logvar = 3 * torch.randn((1000, 4), generator=g)
    assert (gaussian_kl(mu, logvar) > 0).all()
    # one coordinate away from the prior is enough to make it positive
    assert gaussian_kl(torch.tensor([[0.0, 1e-2]]), torch.zeros(1, 2)).item() > 0
    assert gaussian_kl(torch.zeros(1, 2), torch.tensor([[0.0, -1e-2]])).item() > 0


def test_gaussian_kl_gradient_matches_analytic():
    """d KL / d mu = mu and d KL / d logvar = (exp(logvar) - 1) / 2."""
    mu = torch.randn((3, 5), generator=gen(4), dtype=torch.float64, requires_grad=True)
    logvar = torch.randn((3, 5), generator=gen(5), dtype=torch.float64, requires_grad=True)
    gaussian_kl(mu, logvar).sum().backward()
    torch.testing.assert_close(mu.grad, mu.detach())
    torch.testing.assert_close(logvar.grad, 0.5 * (logvar.detach().exp() - 1))


# --- primitives: Bernoulli NLL, ELBO, MSE ------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_bernoulli_nll_matches_torch_distributions(binary):
    g = gen(6)
    logits = 4 * torch.randn((3, 1, 5, 5), generator=g)
    x = torch.rand((3, 1, 5, 5), generator=g)
    if binary:
        x = x.round()
        reference = -Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    else:  # continuous targets: the cross-entropy formula, written out
        p = torch.sigmoid(logits.double())
        reference = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3)).float()
    nll = bernoulli_nll(logits, x)
    assert nll.shape == (3,)
    torch.testing.assert_close(nll, reference, rtol=1e-5, atol=1e-4)


def test_bernoulli_nll_is_stable_for_large_logits():
    logits = torch.tensor([[100.0, -100.0, 100.0]])
    x = torch.tensor([[1.0, 0.0, 0.0]])
    nll = bernoulli_nll(logits, x)
    assert torch.isfinite(nll).all()
    torch.testing.assert_close(nll, torch.tensor([100.0]))


def test_elbo_is_minus_nll_minus_kl():
    g = gen(7)
    logits = torch.randn((4, 1, 6, 6), generator=g)
    mu, logvar = torch.randn((4, 3), generator=g), torch.randn((4, 3), generator=g)
    out = VAEOutput(logits=logits, mu=mu, logvar=logvar, z=mu)
    x = torch.rand((4, 1, 6, 6), generator=g).round()
    reference = Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3)) - kl_divergence(
        Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
    ).sum(-1)
    value = elbo(out, x)
    assert value.shape == (4,)
    torch.testing.assert_close(value, -(bernoulli_nll(logits, x) + gaussian_kl(mu, logvar)))
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-4)


def test_mse_matches_hand_value():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).view(2, 1, 2, 2)
    assert mse(x_hat, x).item() == pytest.approx((1 + 4 + 1) / 8)
    assert mse(x, x).item() == 0.0
    assert mse(x_hat, x).ndim == 0


@pytest.mark.parametrize(
    "fn, a, b",
    [
        (mse, (2, 1, 4, 4), (2, 1, 4, 5)),
        (mse, (2, 1, 4, 4), (3, 1, 4, 4)),
        (bernoulli_nll, (2, 1, 4, 4), (2, 1, 5, 4)),
        (bernoulli_nll, (2, 1, 4, 4), (2, 16)),
        (gaussian_nll, (2, 1, 4, 4), (2, 1, 4, 5)),
        (gaussian_kl, (2, 3), (2, 4)),
        (gaussian_kl, (2, 3), (3, 3)),
    ],
)
def test_primitives_reject_mismatched_shapes(fn, a, b):
    extra = (0.1,) if fn is gaussian_nll else ()
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.zeros(a), torch.zeros(b), *extra)


# --- the reparameterisation trick ------------------------------------------------------


def test_reparameterize_has_the_right_mean_and_variance():
    n = 200_000
    mu = torch.tensor([1.0, -2.0, 0.0]).expand(n, 3)
    logvar = torch.tensor([0.0, math.log(4.0), math.log(0.01)]).expand(n, 3)
    z = VAE.reparameterize(mu, logvar, gen(8)).double()
    assert z.shape == (n, 3)
    var = torch.tensor([1.0, 4.0, 0.01], dtype=torch.float64)
    se_mean = (var / n).sqrt()
    assert ((z.mean(0) - mu[0].double()).abs() < 5 * se_mean).all(), z.mean(0)
    se_var = var * math.sqrt(2 / (n - 1))  # standard error of a Gaussian sample variance
    assert ((z.var(0) - var).abs() < 5 * se_var).all(), z.var(0)


def test_reparameterize_gradients_and_seed():
    mu = torch.randn((4, 3), generator=gen(9), requires_grad=True)
    logvar = torch.randn((4, 3), generator=gen(10), requires_grad=True)
    z = VAE.reparameterize(mu, logvar, gen(11))
    eps = torch.randn((4, 3), generator=gen(11))  # the same noise, drawn again
    torch.testing.assert_close(z, mu + (0.5 * logvar).exp() * eps)
    w = torch.randn((4, 3), generator=gen(12))
    (w * z).sum().backward()
    torch.testing.assert_close(mu.grad, w)  # dz/dmu = 1
    torch.testing.assert_close(logvar.grad, w * 0.5 * (0.5 * logvar.detach()).exp() * eps)
    # same seed, same z; another seed, another z
    again = VAE.reparameterize(mu, logvar, gen(11))
    assert torch.equal(z, again)
    assert not torch.equal(z, VAE.reparameterize(mu, logvar, gen(13)))


# --- the training objectives -----------------------------------------------------------


def tiny_models() -> dict[str, tuple[torch.nn.Module, object, tuple]]:
    """name -> (model, loss function, batch) with tiny configs."""
    torch.manual_seed(0)
    x, y = images(4), torch.tensor([0, 1, 2, 3])
    prior = Prior(PriorConfig(codebook_size=16, grid=4, channels=8, num_layers=2))
    return {
        "ae": (AE(AEConfig(latent_dim=4, channels=(8, 16))), ae_loss, (x, y)),
        "dae": (DAE(DAEConfig(latent_dim=4, channels=(8, 16))), dae_loss, (x, y)),
        "vae": (VAE(VAEConfig(latent_dim=4, channels=(8, 16))), vae_loss, (x, y)),
        "vae-beta": (
            VAE(VAEConfig(latent_dim=4, channels=(8, 16))),
            functools.partial(vae_loss, beta=4.0),
            (x, y),
        ),
        "vae-gauss": (VAE(VAEConfig(latent_dim=4, channels=(8, 16), sigma_dec=0.1)), vae_loss, (x, y)),
        "vqvae": (
            VQVAE(VQVAEConfig(channels=(8, 16), num_res_blocks=1, embedding_dim=4, codebook_size=16)),
            vqvae_loss,
            (x, y),
        ),
        "prior": (prior, prior_loss, (torch.randint(0, 16, (3, 4, 4), generator=gen(1)),)),
        "classifier": (
            Classifier(ClassifierConfig(channels=(8, 16), feature_dim=16)),
            classifier_loss,
            (x, y),
        ),
    }


EXPECTED_TERMS = {
    "ae": {"recon"},
    "dae": {"recon"},
    "vae": {"recon", "kl"},
    "vae-beta": {"recon", "kl"},
    "vae-gauss": {"recon", "kl"},
    "vqvae": {"recon", "codebook", "commitment"},
    "prior": {"nll"},
    "classifier": {"ce"},
}


@pytest.mark.parametrize("name", list(EXPECTED_TERMS))
def test_objectives_return_a_scalar_loss_with_named_terms(name):
    model, loss_fn, batch = tiny_models()[name]
    model.train()
    loss = loss_fn(model, batch, gen(0))
    assert isinstance(loss, Loss)
    assert loss.total.ndim == 0 and loss.total.requires_grad
    assert torch.isfinite(loss.total)
    assert EXPECTED_TERMS[name] <= set(loss.terms), set(loss.terms)
    for term in loss.terms.values():
        assert isinstance(term, torch.Tensor) and term.ndim == 0 and torch.isfinite(term)
    loss.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list(EXPECTED_TERMS))
def test_objectives_are_reproducible_with_a_seed(name):
    """The same seed (weights and generator) gives the same numbers on the CPU."""
    totals = []
    for _ in range(2):
        model, loss_fn, batch = tiny_models()[name]
        torch.manual_seed(1)  # dropout and the VQ-VAE's codebook initialisation use the global RNG
        totals.append(loss_fn(model.train(), batch, gen(5)).total)
    assert torch.equal(totals[0], totals[1])


def test_ae_loss_is_the_mse_of_the_reconstruction():
    model, _, (x, y) = tiny_models()["ae"]
    model.eval()
    loss = ae_loss(model, (x, y), None)
    torch.testing.assert_close(loss.total, ((model(x).x_hat - x) ** 2).mean())
    torch.testing.assert_close(loss.terms["recon"], loss.total)


def test_vae_loss_equals_the_negative_elbo_written_out():
    """Replaying the generator (binarise, then reparameterise) gives the same numbers."""
    model, _, (x, y) = tiny_models()["vae"]
    model.train()
    loss = vae_loss(model, (x, y), gen(21))
    g = gen(21)
    x_bin = binarize(x, g)
    out = model(x_bin, g)
    recon = -Bernoulli(logits=out.logits).log_prob(x_bin).sum((1, 2, 3)).mean()
    kl = kl_divergence(Normal(out.mu, (0.5 * out.logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(loss.terms["recon"], recon, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(loss.terms["kl"], kl, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(loss.total, recon + kl, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(loss.total, -elbo(out, x_bin).mean(), rtol=1e-5, atol=1e-3)


def test_vae_loss_beta():
    model, _, (x, y) = tiny_models()["vae"]
    zero = vae_loss(model, (x, y), gen(2), beta=0.0)
    torch.testing.assert_close(zero.total, zero.terms["recon"])
    assert zero.terms["kl"] > 0  # the KL is still reported
    four = vae_loss(model, (x, y), gen(2), beta=4.0)
    torch.testing.assert_close(four.total, four.terms["recon"] + 4.0 * four.terms["kl"])
    torch.testing.assert_close(four.terms["recon"], zero.terms["recon"])  # same seed, same draw


def test_vae_loss_binarises_its_input():
    """Grey images (0.5 everywhere) must reach the encoder as 0/1 pixels, about half of each."""
    model, _, _ = tiny_models()["vae"]
    model.train()
    seen = []
    model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    x = torch.full((8, 1, 28, 28), 0.5)
    vae_loss(model, (x, torch.zeros(8, dtype=torch.long)), gen(3))
    assert len(seen) == 1
    x_seen = seen[0]
    assert x_seen.shape == x.shape
    assert set(x_seen.unique().tolist()) == {0.0, 1.0}
    assert abs(x_seen.mean().item() - 0.5) < 0.05


def test_dae_loss_compares_with_the_clean_input():
    """A DAE that returns its input unchanged scores mse(corrupt(x), x), not zero."""

    class IdentityDAE(DAE):
        def forward(self, x):  # the "reconstruction" is what came in
            return AEOutput(x_hat=x, z=x.flatten(1)[:, : self.config.latent_dim])

    model = IdentityDAE(DAEConfig(latent_dim=4, channels=(8, 16)))
    x = images(16, seed=4)
    loss = dae_loss(model, (x, torch.zeros(16, dtype=torch.long)), gen(30))
    x_tilde = model.corrupt(x, gen(30))
    expected = ((x_tilde - x) ** 2).mean()
    assert expected > 1e-3
    torch.testing.assert_close(loss.total, expected)


def test_dae_loss_feeds_the_corrupted_input():
    model, _, (x, y) = tiny_models()["dae"]
    seen = []
    model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    dae_loss(model, (x, y), gen(31))
    torch.testing.assert_close(seen[0], model.corrupt(x, gen(31)))
    assert not torch.equal(seen[0], x)


def test_vqvae_loss_is_eq3():
    model, _, (x, y) = tiny_models()["vqvae"]
    model.eval()  # no codebook updates, so that the two forward passes agree
    loss = vqvae_loss(model, (x, y), None)
    out = model(x)
    recon = ((out.x_hat - x) ** 2).mean()
    z_q = model.quantizer.lookup(out.indices)
    codebook = ((z_q - out.z_e) ** 2).mean()
    torch.testing.assert_close(loss.terms["recon"], recon)
    torch.testing.assert_close(loss.terms["codebook"], codebook)
    torch.testing.assert_close(loss.terms["commitment"], codebook)  # same value, other gradient
    torch.testing.assert_close(loss.total, recon + (1 + model.config.beta) * codebook)


def test_prior_loss_is_nats_per_code():
    model, _, (indices,) = tiny_models()["prior"]
    model.eval()
    loss = prior_loss(model, (indices,), None)
    per_grid = -model.log_prob(indices)  # (B,) nats
    torch.testing.assert_close(loss.total, per_grid.sum() / indices.numel())
    if "bits" in loss.terms:
        torch.testing.assert_close(loss.terms["bits"], loss.total / math.log(2))


def test_classifier_loss_is_cross_entropy():
    model, _, (x, y) = tiny_models()["classifier"]
    model.eval()  # no dropout
    loss = classifier_loss(model, (x, y), None)
    logits = model(x)
    reference = -torch.log_softmax(logits, 1)[torch.arange(len(y)), y].mean()
    torch.testing.assert_close(loss.total, reference)


# --- a few optimiser steps lower every loss on real data --------------------------------


def evaluate(model, loss_fn, batch) -> float:
    """The loss on the whole batch in eval mode (no dropout, no codebook updates), with a
    fixed generator so that the noise does not decide a comparison."""
    model.eval()
    with torch.no_grad():
        value = loss_fn(model, batch, gen(0)).total.item()
    model.train()
    return value


def train_steps(model, loss_fn, batch, steps=20, lr=1e-2, batch_size=64) -> tuple[float, float]:
    """(first, last) loss on `batch` around `steps` Adam steps on mini-batches of it."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    n = len(batch[0])
    model.train()
    if isinstance(model, VQVAE):  # the first training batch sets the codebook from data
        model(batch[0][:batch_size])
    first = evaluate(model, loss_fn, batch)
    for step in range(steps):
        start = (step * batch_size) % n
        mini = tuple(t[start : start + batch_size] for t in batch)
        loss = loss_fn(model, mini, gen(step))
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    return first, evaluate(model, loss_fn, batch)


def tiny_vqvae(ema: bool) -> VQVAE:
    config = VQVAEConfig(channels=(8, 16), num_res_blocks=1, embedding_dim=8, codebook_size=16, ema=ema)
    return VQVAE(config)


@pytest.mark.parametrize("name", ["ae", "vae", "vae-gauss", "vqvae-ema", "classifier"])
def test_a_few_steps_lower_the_loss_on_fashion_mnist(name, fashion):
    torch.manual_seed(0)
    model, loss_fn = {
        "ae": (AE(AEConfig(latent_dim=8, channels=(8, 16))), ae_loss),
        "vae": (VAE(VAEConfig(latent_dim=8, channels=(8, 16))), vae_loss),
        "vae-gauss": (VAE(VAEConfig(latent_dim=8, channels=(8, 16), sigma_dec=0.1)), vae_loss),
        "vqvae-ema": (tiny_vqvae(ema=True), vqvae_loss),
        "classifier": (Classifier(ClassifierConfig(channels=(8, 16), feature_dim=32)), classifier_loss),
    }[name]
    first, last = train_steps(model, loss_fn, fashion)
    assert math.isfinite(last)
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_few_small_steps_lower_the_vqvae_loss(seed, fashion):
    """The default, gradient-trained codebook: at lr 1e-2 the encoder outputs outrun the codes
    and the commitment term grows within 20 steps, so this one takes small steps."""
    torch.manual_seed(seed)
    model = tiny_vqvae(ema=False)
    first, last = train_steps(model, vqvae_loss, fashion, lr=1e-3)
    assert last < 0.99 * first, (first, last)


def test_a_few_steps_lower_the_prior_loss():
    torch.manual_seed(0)
    # structured grids (each grid repeats one of 4 codes), so that there is something to learn
    codes = torch.randint(0, 4, (64, 1, 1), generator=gen(40)).expand(64, 4, 4).contiguous()
    model = Prior(PriorConfig(codebook_size=16, grid=4, channels=16, num_layers=4))
    first, last = train_steps(model, prior_loss, (codes,), batch_size=32)
    assert first == pytest.approx(math.log(16), rel=0.2)  # about uniform at initialisation
    assert last < 0.8 * first, (first, last)


def test_losses_module_exports_the_contract():
    for name in ["Loss", "mse", "bernoulli_nll", "gaussian_nll", "decoder_nll", "gaussian_kl", "elbo", "ae_loss", "dae_loss",
                 "vae_loss", "vqvae_loss", "prior_loss", "classifier_loss"]:
        assert hasattr(losses, name), name


# ---------------------------------------------------------------- free bits, KL warm-up


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Each dimension's KL from N(0, 1), averaged over the batch, by torch.distributions: (m,)."""
    q = Normal(mu, (0.5 * logvar).exp())
    return kl_divergence(q, Normal(0.0, 1.0)).mean(0)


def test_free_bits_is_the_plain_kl_when_every_dimension_is_above_the_floor():
    mu = torch.randn(32, 6, generator=gen(50), dtype=torch.float64) + 2.0
    logvar = torch.randn(32, 6, generator=gen(51), dtype=torch.float64)
    assert kl_per_dimension(mu, logvar).min() > 0.5  # each dimension above the floor
    torch.testing.assert_close(
        losses.free_bits_kl(mu, logvar, floor=0.5).double(),
        kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean(),
    )


def test_free_bits_counts_a_dimension_below_the_floor_as_the_floor_and_stops_its_gradient():
    mu = torch.randn(32, 4, generator=gen(52), dtype=torch.float64) * torch.tensor([2, 2, 0.1, 2.0])
    logvar = torch.zeros(32, 4, dtype=torch.float64)
    mu.requires_grad_()
    logvar.requires_grad_()
    per_dim = kl_per_dimension(mu.detach(), logvar.detach())
    assert per_dim[2] < 0.5 < per_dim[[0, 1, 3]].min()
    floored = losses.free_bits_kl(mu, logvar, floor=0.5)
    torch.testing.assert_close(floored.detach().double(), per_dim[[0, 1, 3]].sum() + 0.5)
    floored.backward()
    assert (mu.grad[:, 2] == 0).all() and (logvar.grad[:, 2] == 0).all()
    assert (mu.grad[:, [0, 1, 3]] != 0).any(dim=0).all()  # the others still pull to the prior


def test_free_bits_vae_loss_terms_and_floor_zero():
    model, _, (x, y) = tiny_models()["vae"]
    plain = vae_loss(model, (x, y), gen(2), beta=4.0)
    free = losses.free_bits_vae_loss(model, (x, y), gen(2), beta=4.0, floor=0.0)
    torch.testing.assert_close(free.total, plain.total)  # a floor of 0 changes nothing
    high = losses.free_bits_vae_loss(model, (x, y), gen(2), beta=4.0, floor=100.0)
    m = model.config.latent_dim
    torch.testing.assert_close(high.total, high.terms["recon"] + 4.0 * 100.0 * m)
    torch.testing.assert_close(high.terms["kl"], plain.terms["kl"])  # the logged KL is the plain one
    with pytest.raises(ValueError, match="floor"):
        losses.free_bits_kl(torch.zeros(2, 3), torch.zeros(2, 3), floor=-1.0)


def test_kl_warmup_rises_linearly_then_stays():
    model, _, (x, y) = tiny_models()["vae"]
    warmup = losses.KLWarmup(beta=4.0, fraction=0.5)
    for progress, beta in [(0.0, 0.0), (0.25, 2.0), (0.5, 4.0), (0.9, 4.0)]:
        warmup.progress = progress
        loss = warmup(model, (x, y), gen(2))
        reference = vae_loss(model, (x, y), gen(2), beta=beta)
        torch.testing.assert_close(loss.total, reference.total)
        assert loss.terms["beta"].item() == pytest.approx(beta)
    with pytest.raises(ValueError, match="fraction"):
        losses.KLWarmup(fraction=0.0)


def test_fit_sets_the_warmup_progress_from_the_step():
    from aecourse.train import TrainConfig, fit

    model, _, (x, y) = tiny_models()["vae"]
    warmup = losses.KLWarmup(beta=1.0, fraction=0.5)
    history = fit(model, warmup, (x, y), TrainConfig(epochs=2, batch_size=len(x)),
                  device="cpu", progress=False)
    # one step per epoch: beta was 0 at step 0 and 1 at step 1 (progress 1/2)
    assert history.column("beta") == pytest.approx([0.0, 1.0])


# ---------------------------------------------------------------- the Gaussian decoder


@pytest.mark.parametrize("sigma_dec", [0.03, 0.1, 1.0, 2.5])
def test_gaussian_nll_matches_torch_distributions(sigma_dec):
    x, x_hat = images(3, seed=30), images(3, seed=31)
    expected = -Normal(x_hat.double(), sigma_dec).log_prob(x.double()).sum((1, 2, 3))
    got = gaussian_nll(x_hat, x, sigma_dec)
    assert got.shape == (3,)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("sigma_dec", [0.0, -0.1, float("nan")])
def test_gaussian_nll_rejects_a_non_positive_sigma(sigma_dec):
    with pytest.raises(ValueError, match="sigma_dec must be positive"):
        gaussian_nll(images(2), images(2), sigma_dec)


def test_decoder_nll_follows_the_config():
    torch.manual_seed(0)
    x = images(4, seed=32)
    bernoulli = VAE(VAEConfig(latent_dim=4, channels=(8, 16))).eval()
    gaussian = VAE(VAEConfig(latent_dim=4, channels=(8, 16), sigma_dec=0.2)).eval()
    for model in (bernoulli, gaussian):
        out = model(x, gen(33))
        if model.config.sigma_dec is None:
            expected = -Bernoulli(logits=out.logits, validate_args=False).log_prob(x).sum((1, 2, 3))
        else:
            expected = -Normal(out.x_hat, 0.2).log_prob(x).sum((1, 2, 3))
        torch.testing.assert_close(decoder_nll(model, out, x), expected, rtol=1e-5, atol=1e-3)


def test_gaussian_vae_loss_is_the_negative_elbo_on_grey_images():
    """No binarisation: the encoder sees the grey images, and the reconstruction term is the
    Gaussian log-density of them, constant included."""
    model, _, (x, y) = tiny_models()["vae-gauss"]
    model.train()
    seen = []
    model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    loss = vae_loss(model, (x, y), gen(34))
    assert torch.equal(seen[0], x)
    out = model(x, gen(34))  # the same draw of z
    recon = -Normal(out.x_hat, 0.1).log_prob(x).sum((1, 2, 3)).mean()
    kl = kl_divergence(Normal(out.mu, (0.5 * out.logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(loss.terms["recon"], recon, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(loss.total, recon + kl, rtol=1e-5, atol=1e-3)


def _grads(model, value) -> torch.Tensor:
    model.zero_grad()
    value.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("sigma_dec", [0.05, 0.3])
def test_gaussian_vae_gradient_is_mse_plus_kl_with_beta_two_sigma_squared(sigma_dec):
    """The gradient of the Gaussian negative ELBO is that of sum-MSE / (2 sigma^2) + KL: the
    "sum-MSE + beta KL" loss with beta = 2 sigma^2, scaled by 1 / (2 sigma^2). Averaging the
    squared error over the P pixels instead divides the implied beta by P."""
    torch.manual_seed(1)
    model = VAE(VAEConfig(mlp=True, latent_dim=4, hidden_dim=16, sigma_dec=sigma_dec))
    x = images(6, seed=35)
    pixels = x[0].numel()
    g_elbo = _grads(model, vae_loss(model, (x,), gen(36)).total)

    def mse_kl(reduction: str, beta: float) -> torch.Tensor:
        out = model(x, gen(36))  # the same draw of z
        squared = torch.nn.functional.mse_loss(out.x_hat, x, reduction="none").flatten(1)
        distortion = squared.sum(1) if reduction == "sum" else squared.mean(1)
        return (distortion + beta * gaussian_kl(out.mu, out.logvar)).mean()

    g_sum = _grads(model, mse_kl("sum", beta=2 * sigma_dec**2))
    g_mean = _grads(model, mse_kl("mean", beta=2 * sigma_dec**2 / pixels))
    assert g_elbo.abs().max() > 0
    # float32 throughout (the losses compute in float32): agreement to rounding
    for scaled, reference in ((2 * sigma_dec**2 * g_elbo, g_sum), (2 * sigma_dec**2 / pixels * g_elbo, g_mean)):
        torch.testing.assert_close(scaled, reference, rtol=1e-4, atol=1e-5 * reference.abs().max().item())
    # with beta = 1 the summed loss is another model: its gradient points elsewhere
    g_beta1 = _grads(model, mse_kl("sum", beta=1.0))
    cosine = torch.nn.functional.cosine_similarity(g_beta1, g_elbo, dim=0)
    assert cosine < 0.999


# ---------------------------------------------------------------- the contractive penalty


def test_contractive_penalty_of_a_sigmoid_layer_is_rifai_closed_form():
    """For z = sigmoid(W x + c), J = diag(z (1 - z)) W, so
    ||J||_F^2 = sum_j (z_j (1 - z_j))^2 ||W_j||^2 (Rifai et al. 2011)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(12, 5)
    x = torch.randn(7, 12)

    def encoder(images):
        return torch.sigmoid(layer(images))

    h = encoder(x)  # (7, 5)
    closed = ((h * (1 - h)).pow(2) * layer.weight.pow(2).sum(1)).sum(1)
    assert torch.allclose(losses.contractive_penalty(encoder, x), closed, rtol=1e-5)
    # the Jacobian itself, image by image: diag(h (1 - h)) W
    jac = losses.jacobian(encoder, x)  # (7, 5, 12)
    assert jac.shape == (7, 5, 12)
    assert torch.allclose(jac, (h * (1 - h))[:, :, None] * layer.weight, atol=1e-6)


def test_jacobian_of_an_image_encoder_matches_finite_differences():
    """Central differences of the MLP encoder of the cae, pixel by pixel, in float64;
    each image's Jacobian is its own (the batch does not mix)."""
    torch.manual_seed(1)
    model = AE(AEConfig(latent_dim=3, hidden_dim=8, image_size=4)).double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    jac = losses.jacobian(model.encoder, x)  # (2, 3, 1, 4, 4)
    assert jac.shape == (2, 3, 1, 4, 4)
    step = 1e-6
    numeric = torch.zeros_like(jac)
    for i in range(16):
        e = torch.zeros(16, dtype=torch.float64)
        e[i] = step
        e = e.reshape(1, 1, 4, 4)
        with torch.no_grad():
            diff = (model.encoder(x + e) - model.encoder(x - e)) / (2 * step)
        numeric.flatten(2)[:, :, i] = diff
    assert torch.allclose(jac, numeric, atol=1e-8)
    # one image alone has the same Jacobian as in the batch
    assert torch.allclose(losses.jacobian(model.encoder, x[1:]), jac[1:])


def test_cae_loss_is_recon_plus_lam_times_the_penalty_and_trains_the_encoder():
    torch.manual_seed(2)
    model = AE(AEConfig(latent_dim=4, hidden_dim=16))
    x = torch.rand(6, 1, 28, 28)
    plain = ae_loss(model, (x,)).total
    loss = losses.cae_loss(model, (x,), None, lam=0.5)
    penalty = losses.contractive_penalty(model.encoder, x).mean()
    assert torch.allclose(loss.terms["recon"], plain)
    assert torch.allclose(loss.terms["jacobian"], penalty)
    assert torch.allclose(loss.total, plain + 0.5 * penalty)
    # the penalty's gradient reaches the encoder (through the Jacobian): the
    # gradient of lam * penalty equals the difference of the two losses'
    (with_penalty,) = torch.autograd.grad(loss.total, model.encoder[1].weight)
    (without,) = torch.autograd.grad(plain, model.encoder[1].weight)
    (of_penalty,) = torch.autograd.grad(penalty, model.encoder[1].weight)
    assert of_penalty.abs().sum() > 0
    assert torch.allclose(with_penalty - without, 0.5 * of_penalty, atol=1e-6)
    # lam = 0 is the plain autoencoder
    assert torch.allclose(losses.cae_loss(model, (x,), lam=0.0).total, plain)


def test_a_few_steps_of_the_cae_lower_its_penalty_below_the_plain_ae(fashion):
    """The same network and steps with and without the penalty: the contractive
    one ends with a smaller ||J_e||_F^2 on the batch."""
    penalties = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        model = AE(AEConfig(latent_dim=8, hidden_dim=32))
        loss_fn = functools.partial(losses.cae_loss, lam=lam)
        first, last = train_steps(model, loss_fn, fashion)
        assert last < first, (lam, first, last)
        penalties[lam] = losses.contractive_penalty(model.encoder, fashion[0]).mean().item()
    assert penalties[1.0] < 0.5 * penalties[0.0], penalties


def test_contractive_penalty_rejects_bad_input():
    model = AE(AEConfig(latent_dim=4, hidden_dim=8))
    with pytest.raises(ValueError, match="floating-point batch"):
        losses.jacobian(model.encoder, torch.zeros(1, 28, 28, dtype=torch.long))
    with pytest.raises(ValueError, match="floating-point batch"):
        losses.contractive_penalty(model.encoder, [0.0, 1.0])
    with pytest.raises(ValueError, match="lam must be >= 0"):
        losses.cae_loss(model, (torch.rand(2, 1, 28, 28),), lam=-1.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        losses.cae_loss(model, (torch.rand(2, 1, 28, 28),), lam=float("nan"))
    # f must keep the batch: one output per input
    x = torch.rand(3, 1, 28, 28)
    with pytest.raises(ValueError, match="batch of 3 outputs"):
        losses.jacobian(lambda v: model.encoder(v).sum(0), x)  # (4,)
    with pytest.raises(ValueError, match="batch of 3 outputs"):
        losses.jacobian(lambda v: model.encoder(v).sum(), x)  # ()
