"""Tests of the conditional VAE (`VAEConfig(num_classes > 0)`): shapes, that the label
reaches the decoder and the encoder, the loss against torch.distributions, the
importance-weighted bound of -log p(x | y) against a near-deterministic closed form, and
the ValueErrors that bad labels raise."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from aecourse import losses, metrics
from aecourse.data import binarize
from aecourse.models import VAE, VAEConfig

B, C = 4, 10  # batch size, classes


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cvae(**overrides) -> VAE:
    torch.manual_seed(0)
    config = dict(mlp=True, latent_dim=4, hidden_dim=16, num_classes=C)
    return VAE(VAEConfig(**{**config, **overrides})).eval()


def batch(b: int = B, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((b, 1, 28, 28), generator=gen(seed))
    y = torch.randint(0, C, (b,), generator=gen(seed + 1))
    return x, y


@pytest.mark.parametrize("overrides", [dict(), dict(mlp=False, channels=(4, 8))], ids=str)
def test_shapes(overrides):
    model = cvae(**overrides)
    x, y = batch()
    mu, logvar = model.encode(x, y=y)
    assert mu.shape == logvar.shape == (B, 4)
    out = model(x, gen(), y=y)
    assert out.logits.shape == x.shape and out.z.shape == (B, 4)
    torch.testing.assert_close(model.decode(out.z, y=y), out.logits)
    assert model.reconstruct(x, y=y).shape == x.shape
    samples = model.sample(B, gen(1), y=y)
    assert samples.shape == x.shape and ((0 <= samples) & (samples <= 1)).all()
    assert torch.equal(samples, model.sample(B, gen(1), y=y))


@pytest.mark.parametrize("overrides", [dict(), dict(mlp=False, channels=(4, 8))], ids=str)
def test_the_label_reaches_decoder_and_encoder(overrides):
    model = cvae(**overrides)
    x, _ = batch()
    z = torch.randn(B, 4, generator=gen(2))
    zeros, ones = torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.long)
    with torch.no_grad():
        assert not torch.allclose(model.decode(z, y=zeros), model.decode(z, y=ones))
        assert not torch.allclose(model.encode(x, y=zeros)[0], model.encode(x, y=ones)[0])


def test_the_label_is_a_one_hot_input_of_the_first_decoder_layer():
    """decode(z, y=c) is the unconditional decoder whose first bias is shifted by column
    latent_dim + c of the first weight: what concatenating a one-hot vector means."""
    model = cvae()
    z = torch.randn(B, 4, generator=gen(3))
    first, rest = model.decoder[0], model.decoder[1:]
    for c in (0, 7):
        y = torch.full((B,), c)
        by_hand = rest(z @ first.weight[:, :4].T + first.bias + first.weight[:, 4 + c])
        torch.testing.assert_close(model.decode(z, y=y), by_hand)


def test_loss_is_the_elbo_of_log_p_x_given_y():
    """vae_loss on (x, y): Bernoulli NLL of p(x|z,y) + KL(q(z|x,y) || N(0, I)), each
    recomputed with torch.distributions from the same draws."""
    model = cvae().train()
    x, y = batch()
    loss = losses.vae_loss(model, (x, y), gen(5))
    g = gen(5)  # the same stream: binarisation, then eps
    xb = binarize(x, g)
    mu, logvar = model.encode(xb, y=y)
    z = model.reparameterize(mu, logvar, g)
    recon = -Bernoulli(logits=model.decode(z, y=y)).log_prob(xb).flatten(1).sum(1).mean()
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(loss.terms["recon"], recon)
    torch.testing.assert_close(loss.terms["kl"], kl)
    torch.testing.assert_close(loss.total, recon + kl)
    # the labels are used: other labels, another loss
    other = losses.vae_loss(model, (x, (y + 1) % C), gen(5))
    assert not torch.allclose(other.total, loss.total)


def test_iw_nll_given_labels_matches_a_closed_form():
    """With a proposal of almost no variance, every sample is z = mu: the weights are
    p(x | mu, y) N(mu; 0, I) / q(z_i), q(z_i) from the same draws eps_i. batch_size=4
    puts two samples of the two images in one decoder pass, so labels repeated in the
    wrong order would show."""
    model = cvae()
    x, y = batch(2)
    y[1] = (y[0] + 3) % C  # two different labels
    xb = binarize(x, gen(6))
    with torch.no_grad():
        mu, _ = model.encode(xb, y=y)
    logvar = torch.full_like(mu, -30.0)
    bound = metrics.iw_nll(model, xb, k=3, batch_size=4, generator=gen(7), posterior=(mu, logvar), y=y)
    g = gen(7)  # the draws of the two passes: 2 samples, then 1
    eps = torch.cat([torch.randn((2, 2, 4), generator=g), torch.randn((1, 2, 4), generator=g)])
    with torch.no_grad():
        log_px = Bernoulli(logits=model.decode(mu, y=y)).log_prob(xb).flatten(1).sum(1)
    log_pz = Normal(0.0, 1.0).log_prob(mu).sum(1)  # (2,)
    log_qz = Normal(0.0, 1.0).log_prob(eps).sum(-1) - 0.5 * logvar.sum(1)  # (3, 2)
    log_w = (log_px + log_pz - log_qz).double()
    expected = -(torch.logsumexp(log_w, 0) - math.log(3))
    torch.testing.assert_close(bound, expected, rtol=1e-5, atol=1e-3)
    # the same with the labels swapped is another bound
    swapped = metrics.iw_nll(model, xb, k=3, batch_size=4, generator=gen(7), posterior=(mu, logvar),
                             y=y.flip(0))
    assert (swapped - bound).abs().max() > 0.1


@pytest.mark.parametrize(
    "y, message",
    [
        (None, "conditional: pass y"),
        (torch.tensor([0, 1, 2, 10]), r"in \[0, 10\)"),
        (torch.tensor([0, 1, -1, 2]), r"in \[0, 10\)"),
        (torch.tensor([[0], [1], [2], [3]]), "shape"),
        (torch.tensor([0, 1, 2]), "shape"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "integer"),
        (torch.tensor([True, False, True, False]), "integer"),
    ],
)
def test_bad_labels_raise(y, message):
    model = cvae()
    x, _ = batch()
    with pytest.raises(ValueError, match=message):
        model.encode(x, y=y)
    with pytest.raises(ValueError, match=message):
        model.decode(torch.zeros(B, 4), y=y)


def test_unconditional_model_refuses_labels_and_configs_are_checked():
    model = cvae(num_classes=0)
    x, y = batch()
    with pytest.raises(ValueError, match="unconditional"):
        model.encode(x, y=y)
    for n in (-1, 1):
        with pytest.raises(ValueError, match="num_classes"):
            cvae(num_classes=n)
    with pytest.raises(ValueError, match="labels"):
        losses.vae_loss(cvae(), (x,), gen())
    with pytest.raises(ValueError, match="one per image"):
        metrics.iw_nll(cvae(), binarize(x, gen()), k=2, y=y[:2])
