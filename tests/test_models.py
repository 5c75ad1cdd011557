"""Tests of aecourse.models: shapes over several configs, the vector quantiser against brute
force and hand values, the PixelCNN prior's causality (no peeking, no blind spot), the
denoising corruptions, and the ValueErrors that bad inputs and configs must raise."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from aecourse import sampling
from aecourse.models import (
    AE,
    DAE,
    MODEL_CLASSES,
    VAE,
    VQVAE,
    AEConfig,
    AEOutput,
    Classifier,
    ClassifierConfig,
    DAEConfig,
    Prior,
    PriorConfig,
    QuantizerOutput,
    VAEConfig,
    VAEOutput,
    VectorQuantizer,
    VQVAEConfig,
    VQVAEOutput,
    gaussian_noise,
    mask_pixels,
)

B = 3  # batch size of the shape tests


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = B, c: int = 1, s: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand((b, c, s, s), generator=gen(seed))


def tiny_vqvae(**overrides) -> VQVAE:
    config = dict(channels=(8, 16), num_res_blocks=1, embedding_dim=4, codebook_size=16)
    config.update(overrides)
    return VQVAE(VQVAEConfig(**config))


# --- shapes ----------------------------------------------------------------------------

AE_CONFIGS = [
    dict(latent_dim=2),
    dict(latent_dim=16),
    dict(latent_dim=2, linear=True),
    dict(latent_dim=16, linear=True),
    dict(latent_dim=16, in_channels=3, image_size=32),
    dict(latent_dim=4, in_channels=3, image_size=32, linear=True),
    dict(latent_dim=4, channels=(8, 16, 16)),  # with a 3x3 refining layer
    dict(latent_dim=16, hidden_dim=32),  # the MLP of the cae
    dict(latent_dim=4, hidden_dim=8, in_channels=3, image_size=32),
]


@pytest.mark.parametrize("cls", [AE, DAE])
@pytest.mark.parametrize("overrides", AE_CONFIGS, ids=str)
def test_ae_shapes(cls, overrides):
    torch.manual_seed(0)
    config = cls.config_class(**{"channels": (8, 16), **overrides})
    model = cls(config).eval()
    c, s, k = config.in_channels, config.image_size, config.latent_dim
    x = images(B, c, s)
    z = model.encode(x)
    assert z.shape == (B, k)
    x_hat = model.decode(z)
    assert x_hat.shape == (B, c, s, s)
    out = model(x)
    assert isinstance(out, AEOutput)
    assert out.x_hat.shape == (B, c, s, s) and out.z.shape == (B, k)
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.x_hat, x_hat)
    if config.linear:  # affine maps: decode(a z1 + (1 - a) z2) = a decode(z1) + (1 - a) decode(z2)
        z1, z2 = torch.randn((2, B, k), generator=gen(1))
        torch.testing.assert_close(
            model.decode(0.3 * z1 + 0.7 * z2), 0.3 * model.decode(z1) + 0.7 * model.decode(z2)
        )
        x2 = images(B, c, s, seed=2)
        torch.testing.assert_close(
            model.encode(0.3 * x + 0.7 * x2), 0.3 * model.encode(x) + 0.7 * model.encode(x2)
        )
        assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 2
    else:  # sigmoid output
        assert ((0 <= x_hat) & (x_hat <= 1)).all()


def test_dae_is_an_ae_with_corruption_levels():
    config = DAEConfig(channels=(8, 16))
    assert isinstance(config, AEConfig) and (config.sigma_max, config.mask_max) == (0.6, 0.7)
    model = DAE(config)
    assert isinstance(model, AE)
    x = images(8)
    x_tilde = model.corrupt(x, gen(0))
    assert x_tilde.shape == x.shape


VAE_CONFIGS = [
    dict(latent_dim=2),
    dict(latent_dim=16),
    dict(latent_dim=20, mlp=True, hidden_dim=32),
    dict(latent_dim=4, mlp=True, hidden_dim=16, in_channels=3, image_size=32),
    dict(latent_dim=8, in_channels=3, image_size=32),
]


@pytest.mark.parametrize("overrides", VAE_CONFIGS, ids=str)
def test_vae_shapes(overrides):
    torch.manual_seed(0)
    config = VAEConfig(**{"channels": (8, 16), **overrides})
    model = VAE(config).eval()
    c, s, k = config.in_channels, config.image_size, config.latent_dim
    x = images(B, c, s)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (B, k)
    out = model(x, gen(0))
    assert isinstance(out, VAEOutput)
    assert out.logits.shape == (B, c, s, s)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (B, k)
    torch.testing.assert_close(out.x_hat, torch.sigmoid(out.logits))
    torch.testing.assert_close(model.decode(out.z), out.logits)
    again = model(x, gen(0))  # same generator seed, same sample
    assert torch.equal(again.z, out.z)
    samples = model.sample(5, gen(1))
    assert samples.shape == (5, c, s, s)
    assert ((0 <= samples) & (samples <= 1)).all()
    assert torch.equal(samples, model.sample(5, gen(1)))


def test_vae_mlp_is_the_classic_784_400_20():
    model = VAE(VAEConfig(mlp=True, latent_dim=20))
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sorted(shapes) == sorted([(400, 784), (40, 400), (400, 20), (784, 400)])


VQ_CONFIGS = [
    dict(),  # 28 -> 14 -> 7
    dict(channels=(8,)),  # 28 -> 14
    dict(channels=(8, 16, 16), in_channels=3, image_size=32),  # 32 -> 4
    dict(ema=True, num_res_blocks=0),
]


@pytest.mark.parametrize("overrides", VQ_CONFIGS, ids=str)
def test_vqvae_shapes(overrides):
    torch.manual_seed(0)
    model = tiny_vqvae(**overrides).eval()
    config = model.config
    c, s, d, k = config.in_channels, config.image_size, config.embedding_dim, config.codebook_size
    g = s // 2 ** len(config.channels)
    assert config.grid == g
    x = images(B, c, s)
    out = model(x)
    assert isinstance(out, VQVAEOutput)
    assert out.x_hat.shape == (B, c, s, s)
    assert ((0 <= out.x_hat) & (out.x_hat <= 1)).all()
    assert out.z_e.shape == out.z_q.shape == (B, d, g, g)
    assert out.indices.shape == (B, g, g) and out.indices.dtype == torch.int64
    assert 0 <= out.indices.min() and out.indices.max() < k
    for term in (out.codebook_loss, out.commitment_loss, out.perplexity):
        assert term.ndim == 0
    indices = model.encode(x)
    assert indices.shape == (B, g, g) and indices.dtype == torch.int64
    assert torch.equal(indices, out.indices)
    x_hat = model.decode_indices(indices)
    assert x_hat.shape == (B, c, s, s)
    assert ((0 <= x_hat) & (x_hat <= 1)).all()
    torch.testing.assert_close(x_hat, out.x_hat)  # the decoder sees only the codes
    random = torch.randint(0, k, (2, g, g), generator=gen(3))
    assert model.decode_indices(random).shape == (2, c, s, s)


def test_each_family_turns_inputs_and_latents_into_images():
    """reconstruct(x) and decode_images(latents), one method per model instead of a
    ladder of isinstance tests in the callers; each against its definition."""
    torch.manual_seed(0)
    x = images(B)
    with torch.no_grad():
        for model in (AE(AEConfig(channels=(8, 16))), DAE(DAEConfig(channels=(8, 16)))):
            model.eval()
            torch.testing.assert_close(model.reconstruct(x), model(x).x_hat)
            z = 10 * torch.randn(B, model.config.latent_dim, generator=gen(1))
            torch.testing.assert_close(model.decode_images(z), model.decode(z))  # a sigmoid already
        linear = AE(AEConfig(latent_dim=4, linear=True)).eval()
        linear.decoder[0].bias.fill_(2.0)  # outputs far above 1
        assert linear.reconstruct(x).max() > 1  # as the model outputs it (PSNR sees the error)
        assert torch.equal(linear.decode_images(torch.zeros(2, 4)), torch.ones(2, 1, 28, 28))
        vae = VAE(VAEConfig(latent_dim=4, channels=(8, 16))).eval()
        mu, _ = vae.encode(x)
        torch.testing.assert_close(vae.reconstruct(x), torch.sigmoid(vae.decode(mu)))  # no sampling
        z = torch.randn(B, 4, generator=gen(2))
        torch.testing.assert_close(vae.decode_images(z), torch.sigmoid(vae.decode(z)))
        vq = tiny_vqvae().eval()
        torch.testing.assert_close(vq.reconstruct(x), vq(x).x_hat)
        indices = torch.randint(0, 16, (B, 7, 7), generator=gen(3))
        torch.testing.assert_close(vq.decode_images(indices), vq.decode_indices(indices))


PRIOR_CONFIGS = [
    dict(codebook_size=16, grid=4, channels=8, num_layers=2),
    dict(codebook_size=7, grid=5, channels=8, num_layers=5, kernel_size=5),
    dict(codebook_size=32, grid=7, channels=8, num_layers=1),
]


@pytest.mark.parametrize("overrides", PRIOR_CONFIGS, ids=str)
def test_prior_shapes(overrides):
    torch.manual_seed(0)
    config = PriorConfig(**overrides)
    model = Prior(config).eval()
    k, g = config.codebook_size, config.grid
    indices = torch.randint(0, k, (B, g, g), generator=gen(0))
    logits = model(indices)
    assert logits.shape == (B, k, g, g)
    log_prob = model.log_prob(indices)
    assert log_prob.shape == (B,)
    assert (log_prob < 0).all()
    samples = model.sample(4, gen(1))
    assert samples.shape == (4, g, g) and samples.dtype == torch.int64
    assert 0 <= samples.min() and samples.max() < k


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(num_classes=3, feature_dim=5), dict(in_channels=3, image_size=32, channels=(8, 16, 16))],
    ids=str,
)
def test_classifier_shapes(overrides):
    torch.manual_seed(0)
    config = ClassifierConfig(**{"channels": (8, 16), "feature_dim": 16, **overrides})
    model = Classifier(config).eval()
    x = images(B, config.in_channels, config.image_size)
    logits = model(x)
    assert logits.shape == (B, config.num_classes)
    features = model.features(x)
    assert features.shape == (B, config.feature_dim)
    torch.testing.assert_close(model.head(features), logits)


def test_model_classes_registry():
    assert set(MODEL_CLASSES) == {"AE", "DAE", "VAE", "VQVAE", "Prior", "Classifier", "SAE"}
    for name, cls in MODEL_CLASSES.items():
        assert cls.__name__ == name
        config = cls.config_class()
        assert dataclasses.is_dataclass(config)
    assert DAE.config_class is DAEConfig and AE.config_class is AEConfig


def test_default_configs_match_the_contract():
    """The fields the API contract fixes (conv widths are the lead's to tune)."""
    ae = AEConfig()
    assert (ae.in_channels, ae.image_size, ae.latent_dim, ae.linear) == (1, 28, 16, False)
    vae = VAEConfig()
    assert (vae.in_channels, vae.image_size, vae.latent_dim, vae.mlp, vae.hidden_dim) == (1, 28, 16, False, 400)
    vq = VQVAEConfig()
    assert (vq.embedding_dim, vq.codebook_size, vq.beta, vq.ema, vq.grid) == (64, 512, 0.25, False, 7)
    assert not hasattr(VectorQuantizer(4, 2), "beta")  # beta weighs the loss: the config's
    assert len(vq.channels) == 2  # 28 -> 14 -> 7
    prior = PriorConfig()
    assert (prior.codebook_size, prior.grid, prior.kernel_size) == (512, 7, 3)
    assert prior.num_layers >= prior.grid - 1  # enough layers to see the whole past
    classifier = ClassifierConfig()
    assert (classifier.num_classes, classifier.feature_dim) == (10, 128)


# --- the vector quantiser --------------------------------------------------------------


def quantizer(k: int = 16, d: int = 4, seed: int = 0, **kwargs) -> VectorQuantizer:
    torch.manual_seed(seed)
    vq = VectorQuantizer(k, d, **kwargs)
    with torch.no_grad():
        vq.codebook.copy_(torch.randn((k, d), generator=gen(seed)))  # distinct codes
        if vq.ema:
            vq.embed_sum.copy_(vq.codebook)
    vq.initialized = True  # as if trained: no initialisation from data
    return vq


def test_nearest_matches_brute_force():
    vq = quantizer(16, 4)
    z = torch.randn((200, 4), generator=gen(1))
    differences = z[:, None, :] - vq.codebook.detach()[None, :, :]  # (N, K, D)
    brute = differences.pow(2).sum(-1).argmin(1)
    assert torch.equal(vq.nearest(z), brute)
    assert torch.equal(vq.nearest(z), torch.cdist(z, vq.codebook.detach()).argmin(1))
    assert vq.nearest(z).dtype == torch.int64


def test_codes_are_their_own_nearest_neighbours():
    vq = quantizer(16, 4)
    assert torch.equal(vq.nearest(vq.codebook.detach()), torch.arange(16))
    indices = torch.randint(0, 16, (3, 5, 4), generator=gen(2))
    codes = vq.lookup(indices)  # (B, D, h, w)
    assert codes.shape == (3, 4, 5, 4)
    torch.testing.assert_close(codes[1, :, 2, 3], vq.codebook[indices[1, 2, 3]].detach())
    flat = codes.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.equal(vq.nearest(flat).view(3, 5, 4), indices)
    vq.eval()
    out = vq(codes.detach())
    assert isinstance(out, QuantizerOutput)
    assert torch.equal(out.indices, indices)
    torch.testing.assert_close(out.z_q, codes)
    assert out.codebook_loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("training", [False, True])
def test_straight_through_gradient(training):
    vq = quantizer(16, 4, restart_dead_codes=False).train(training)
    z_e = torch.randn((2, 4, 3, 5), generator=gen(3), requires_grad=True)
    out = vq(z_e)
    # forward: the looked-up codes
    torch.testing.assert_close(out.z_q, vq.lookup(out.indices))
    assert out.indices.shape == (2, 3, 5)
    # backward: the identity, d sum(w * z_q) / d z_e = w, and nothing to the codebook
    w = torch.randn((2, 4, 3, 5), generator=gen(4))
    (w * out.z_q).sum().backward()
    torch.testing.assert_close(z_e.grad, w)
    assert vq.codebook.grad is None or (vq.codebook.grad == 0).all()


def test_codebook_loss_moves_only_the_codebook():
    vq = quantizer(8, 3).eval()
    z_e = torch.randn((2, 3, 4, 4), generator=gen(5), requires_grad=True)
    out = vq(z_e)
    out.codebook_loss.backward()
    assert z_e.grad is None  # sg[z_e]
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 3)  # (N, D)
    e = vq.codebook.detach()
    idx = out.indices.flatten()
    expected = torch.zeros_like(e)  # d/de_k mean ||e - z||^2 = 2/(N D) sum_{i -> k} (e_k - z_i)
    expected.index_add_(0, idx, 2 * (e[idx] - flat) / flat.numel())
    torch.testing.assert_close(vq.codebook.grad, expected)
    torch.testing.assert_close(out.codebook_loss, ((e[idx] - flat) ** 2).mean())


def test_commitment_loss_moves_only_the_encoder_output():
    vq = quantizer(8, 3).eval()
    z_e = torch.randn((2, 3, 4, 4), generator=gen(6), requires_grad=True)
    out = vq(z_e)
    out.commitment_loss.backward()
    assert vq.codebook.grad is None  # sg[e]
    z_q = vq.lookup(out.indices).detach()
    torch.testing.assert_close(z_e.grad, 2 * (z_e.detach() - z_q) / z_e.numel())


def test_perplexity_hand_values():
    vq = quantizer(4, 4).eval()
    with torch.no_grad():
        vq.codebook.copy_(10 * torch.eye(4))

    def perplexity(assignment: list[int]) -> float:
        codes = vq.codebook.detach()[assignment]  # (N, D)
        z_e = codes.T.reshape(1, 4, 1, len(assignment))
        out = vq(z_e)
        assert out.indices.flatten().tolist() == assignment
        return out.perplexity.item()

    assert perplexity([0, 0, 1, 2]) == pytest.approx(2**1.5, rel=1e-5)  # exp(1.5 ln 2)
    assert perplexity([3, 3, 3, 3]) == pytest.approx(1.0, rel=1e-5)
    assert perplexity([0, 1, 2, 3, 0, 1, 2, 3]) == pytest.approx(4.0, rel=1e-5)


def test_eval_mode_leaves_the_quantizer_untouched():
    for ema in (False, True):
        vq = quantizer(8, 2, ema=ema).eval()
        before = {k: v.clone() for k, v in vq.state_dict().items()}
        for seed in range(3):
            vq(torch.randn((4, 2, 3, 3), generator=gen(seed)))
        for key, value in vq.state_dict().items():
            assert torch.equal(value, before[key]), (ema, key)


def test_first_training_batch_initialises_the_codebook_from_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, restart_dead_codes=False).train()
    z_e = torch.randn((2, 2, 4, 4), generator=gen(7)) + 5.0  # far from the uniform(-1/K, 1/K) init
    out = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    distances = torch.cdist(vq.codebook.detach(), flat)  # (K, N)
    assert distances.min(1).values.max() < 1e-5  # every code is an encoder output
    assert vq.initialized
    torch.testing.assert_close(out.z_q, vq.lookup(out.indices))
    codebook = vq.codebook.detach().clone()
    vq(z_e + 1.0)  # later batches do not reset it
    assert torch.equal(vq.codebook.detach(), codebook)


@pytest.mark.parametrize("ema", [False, True])
def test_loaded_weights_are_never_reset_from_data(ema):
    """The state dict holds only what the quantiser needs (embed_sum only with EMA, no
    flag); loading it marks the codebook as trained, so training goes on from it."""
    trained = quantizer(8, 2, ema=ema, restart_dead_codes=False)
    expected = {"codebook", "cluster_size"} | ({"embed_sum"} if ema else set())
    assert set(trained.state_dict()) == expected
    fresh = VectorQuantizer(8, 2, ema=ema, restart_dead_codes=False)
    assert not fresh.initialized
    fresh.load_state_dict(trained.state_dict())
    assert fresh.initialized
    z_e = torch.randn((1, 2, 4, 4), generator=gen(12)) + 50.0  # far from every code
    fresh.train()(z_e)  # a reset would put codes onto these points
    points = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    assert torch.cdist(fresh.codebook.detach(), points).min() > 10
    model = tiny_vqvae()  # and through a parent module's load_state_dict
    copy = tiny_vqvae()
    copy.load_state_dict(model.state_dict())
    assert copy.quantizer.initialized and "quantizer.initialized" not in model.state_dict()


def clustered_batch(centres: torch.Tensor, counts: list[int], seed: int, spread: float = 0.1):
    """z_e (1, D, 1, N) with counts[k] points scattered around centres[k]."""
    g = gen(seed)
    points = torch.cat(
        [centres[k] + spread * torch.randn((n, centres.shape[1]), generator=g) for k, n in enumerate(counts)]
    )
    return points.T.reshape(1, centres.shape[1], 1, len(points)), points


def test_ema_update_follows_appendix_a1():
    k, d, decay = 4, 2, 0.9
    vq = quantizer(k, d, ema=True, ema_decay=decay, restart_dead_codes=False)
    old = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    with torch.no_grad():
        vq.codebook.copy_(old)
        vq.embed_sum.copy_(old)
    assert not vq.codebook.requires_grad
    true_centres = torch.tensor([[0.2, -0.1], [1.1, 0.2], [-0.1, 1.2], [5.0, 5.0]])
    z_e, points = clustered_batch(true_centres, [6, 4, 5, 0], seed=8, spread=0.05)
    out = vq.train()(z_e)
    # the codebook has no gradient: the codebook term only reports the distance
    assert not out.codebook_loss.requires_grad
    torch.testing.assert_close(out.codebook_loss, out.commitment_loss)
    idx = out.indices.flatten()
    assert idx.tolist() == [0] * 6 + [1] * 4 + [2] * 5
    counts = torch.bincount(idx, minlength=k).float()
    sums = torch.zeros(k, d).index_add_(0, idx, points)
    means = sums[:3] / counts[:3, None]
    # the codes move towards the batch means ...
    new = vq.codebook.detach()
    assert ((new[:3] - means).norm(dim=1) < (old[:3] - means).norm(dim=1)).all()
    # ... by exactly the EMA of appendix A.1 (with Laplace smoothing of the counts)
    cluster = decay * 1.0 + (1 - decay) * counts
    embed_sum = decay * old + (1 - decay) * sums
    n = cluster.sum()
    smoothed = (cluster + 1e-5) / (n + k * 1e-5) * n
    torch.testing.assert_close(new, embed_sum / smoothed[:, None])
    torch.testing.assert_close(new[3], old[3], atol=1e-4, rtol=0)  # an unused code stays put
    # repeated on the same batch, the codes converge to the k-means centroids
    for _ in range(150):
        vq(z_e)
    torch.testing.assert_close(vq.codebook.detach()[:3], means, atol=1e-3, rtol=0)


def test_dead_codes_are_restarted_on_encoder_outputs():
    k, d = 4, 2
    vq = quantizer(k, d, ema=False, ema_decay=0.9, restart_dead_codes=True)
    far = torch.tensor([50.0, 50.0])
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        vq.codebook.copy_(torch.cat([centres, far[None]]))
    z_e, points = clustered_batch(centres, [6, 5, 5], seed=9)
    vq.train()
    vq(z_e)
    assert torch.equal(vq.codebook.detach()[3], far)  # one step unused is not dead yet
    restarted_at = None
    for step in range(100):
        out = vq(z_e)
        assert (out.indices != 3).all() or restarted_at is not None
        if not torch.equal(vq.codebook.detach()[3], far):
            restarted_at = step
            break
    assert restarted_at is not None, "a code unused for 100 steps was never restarted"
    code = vq.codebook.detach()[3]
    assert (points - code).norm(dim=1).min() < 1e-6  # it now sits on an encoder output
    torch.testing.assert_close(vq.codebook.detach()[:3], centres)  # the live codes stay put
    out = vq.eval()(z_e)
    assert (out.indices == 3).any()  # and the restarted code is used


@pytest.mark.parametrize("ema", [False, True])
def test_codes_in_use_are_not_restarted_in_large_batches(ema):
    """A code that serves 10% of a large batch (0.4 of the average share) is alive. The
    dead-code threshold (1% of the average count) scales with the batch, so the statistics a
    fresh or restarted code starts from must scale with it too."""
    k, d = 4, 2
    vq = quantizer(k, d, ema=ema, restart_dead_codes=True)  # fresh statistics, as constructed
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    with torch.no_grad():
        vq.codebook.copy_(centres)
        if ema:
            vq.embed_sum.copy_(centres)
    z_e, points = clustered_batch(centres, [300, 300, 300, 100], seed=10)  # 1000 cells
    vq.train()
    for _ in range(5):
        out = vq(z_e)
        assert torch.bincount(out.indices.flatten(), minlength=k).tolist() == [300, 300, 300, 100]
        assert (vq.codebook.detach()[3] - centres[3]).norm() < 0.1, "a code in use was restarted"


def test_quantizer_rejects_bad_inputs():
    vq = quantizer(8, 3).eval()
    with pytest.raises(ValueError, match="3 channels"):
        vq(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        vq.nearest(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        vq.lookup(torch.full((1, 2, 2), 8))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        vq.lookup(torch.full((1, 2, 2), -1))
    with pytest.raises(ValueError, match="integer"):
        vq.lookup(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        vq.lookup(torch.zeros(4, dtype=torch.long))


# --- the PixelCNN prior: causality ------------------------------------------------------


def embedding_gradient(model: Prior, indices: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """|d logits[:, :, i, j] / d embedding| summed over batch and channels: (g, g)."""
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["e"] = output

    handle = model.embed.register_forward_hook(keep)
    try:
        logits = model(indices)
    finally:
        handle.remove()
    w = torch.randn(logits.shape[:2], generator=gen(i * 100 + j))  # a random direction
    (logits[:, :, i, j] * w).sum().backward()
    return captured["e"].grad.abs().sum(dim=(0, 3))  # (g, g), from (B, g, g, C)


def raster_before(g: int, i: int, j: int) -> torch.Tensor:
    """(g, g) bool: the cells strictly before (i, j) in raster order."""
    order = torch.arange(g * g).view(g, g)
    return order < i * g + j


@pytest.mark.parametrize(
    "overrides",
    [
        dict(codebook_size=16, grid=4, channels=8, num_layers=4),
        dict(codebook_size=8, grid=5, channels=8, num_layers=5),
        dict(codebook_size=8, grid=5, channels=8, num_layers=3, kernel_size=5),
    ],
    ids=str,
)
def test_prior_is_causal_with_no_blind_spot(overrides):
    """logits at (i, j) depend on every cell before (i, j) in raster order and no other."""
    torch.manual_seed(0)
    model = Prior(PriorConfig(**overrides)).eval()
    g, k = model.config.grid, model.config.codebook_size
    indices = torch.randint(0, k, (2, g, g), generator=gen(1))
    for i in range(g):
        for j in range(g):
            model.zero_grad()
            grad = embedding_gradient(model, indices, i, j)
            before = raster_before(g, i, j)
            assert (grad[~before] == 0).all(), f"cell ({i}, {j}) sees the present or future:\n{grad}"
            assert (grad[before] > 0).all(), f"cell ({i}, {j}) has a blind spot:\n{grad}"


def test_default_prior_sees_its_whole_past():
    """The default config (7x7 grid) with the hardest cells: the first cell of the last row
    must see the top-right corner; the top-right cell must see all of the first row."""
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=16)).eval()  # default grid, layers and width
    g = model.config.grid
    indices = torch.randint(0, 16, (1, g, g), generator=gen(2))
    for i, j in [(g - 1, 0), (0, g - 1), (g - 1, g - 1), (1, 0), (g // 2, g // 2)]:
        model.zero_grad()
        grad = embedding_gradient(model, indices, i, j)
        before = raster_before(g, i, j)
        assert (grad[~before] == 0).all() and (grad[before] > 0).all(), ((i, j), grad)


def test_a_shallow_prior_has_a_limited_receptive_field():
    """The gradient check can fail: with one layer, (i, j) sees only the row above (3 cells)
    and its left neighbour."""
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=8, grid=5, channels=8, num_layers=1)).eval()
    indices = torch.randint(0, 8, (2, 5, 5), generator=gen(3))
    grad = embedding_gradient(model, indices, 2, 2)
    seen = {(r, c) for r in range(5) for c in range(5) if grad[r, c] > 0}
    assert seen == {(1, 1), (1, 2), (1, 3), (2, 1)}


@pytest.mark.parametrize("cell", [(0, 0), (0, 4), (1, 0), (2, 3), (4, 0), (4, 4)])
def test_prior_perturbation(cell):
    """Changing cells at or after (i, j) leaves logits[:, :, i, j] unchanged; changing any one
    cell before it changes them."""
    i, j = cell
    torch.manual_seed(0)
    g, k = 5, 8
    model = Prior(PriorConfig(codebook_size=k, grid=g, channels=8, num_layers=g)).eval()
    indices = torch.randint(0, k, (1, g, g), generator=gen(4))
    with torch.no_grad():
        reference = model(indices)[:, :, i, j]
        before = raster_before(g, i, j)
        future = indices.clone()
        future[0][~before] = (indices[0][~before] + 1 + torch.randint(0, k - 1, (int((~before).sum()),), generator=gen(5))) % k
        assert (future[0][~before] != indices[0][~before]).all()
        torch.testing.assert_close(model(future)[:, :, i, j], reference, atol=1e-6, rtol=0)
        for r, c in before.nonzero().tolist():
            changed = indices.clone()
            changed[0, r, c] = (indices[0, r, c] + 1) % k
            assert not torch.allclose(model(changed)[:, :, i, j], reference, atol=1e-6, rtol=0), (r, c)


def test_prior_log_prob_is_the_sum_of_per_cell_picks():
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=16, grid=4, channels=8, num_layers=4)).eval()
    indices = torch.randint(0, 16, (3, 4, 4), generator=gen(6))
    log_probs = torch.log_softmax(model(indices), dim=1)  # (B, K, g, g)
    picks = log_probs.gather(1, indices[:, None]).squeeze(1)  # (B, g, g)
    torch.testing.assert_close(model.log_prob(indices), picks.sum(dim=(1, 2)))
    manual = sum(log_probs[b, indices[b, r, c], r, c] for b in [1] for r in range(4) for c in range(4))
    torch.testing.assert_close(model.log_prob(indices)[1], manual)


def test_prior_sample_is_reproducible_and_follows_the_model():
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=8, grid=3, channels=8, num_layers=3)).eval()
    a = model.sample(6, gen(7))
    assert torch.equal(a, model.sample(6, gen(7)))
    assert not torch.equal(a, model.sample(6, gen(8)))
    assert a.shape == (6, 3, 3) and 0 <= a.min() and a.max() < 8
    cold = model.sample(6, gen(9), temperature=1e-4)  # near argmax: deterministic decoding
    greedy = torch.zeros((1, 3, 3), dtype=torch.long)
    for i in range(3):
        for j in range(3):
            greedy[0, i, j] = model(greedy)[0, :, i, j].argmax()
    assert (cold == greedy).all()


def test_prior_sample_matches_the_plain_sampler():
    """No output looks down: the logits of rows 0..i alone equal the full grid's. `sample`
    runs the vertical stack once per row and the horizontal stack on one row: its draws
    equal those of the plain sampler, which reruns the whole grid for every cell."""
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=6, grid=5, channels=8, num_layers=3)).eval()
    indices = torch.randint(0, 6, (3, 5, 5))
    full = model(indices)  # (3, 6, 5, 5)
    for rows in range(1, 6):
        torch.testing.assert_close(model.head(model._features(indices[:, :rows])), full[:, :, :rows])
    reference, generator = torch.zeros((4, 5, 5), dtype=torch.long), gen(11)
    for i in range(5):  # the plain sampler: the whole grid at every cell
        for j in range(5):
            probs = torch.softmax(model(reference)[:, :, i, j], dim=1)
            reference[:, i, j] = sampling.categorical(probs, generator)
    assert torch.equal(model.sample(4, gen(11)), reference)


def test_prior_sample_first_cell_follows_its_marginal():
    """The first cell sees nothing: its frequencies over many samples match softmax(logits)."""
    torch.manual_seed(0)
    model = Prior(PriorConfig(codebook_size=4, grid=2, channels=8, num_layers=2)).eval()
    n = 4000
    samples = model.sample(n, gen(10))
    probs = torch.softmax(model(torch.zeros((1, 2, 2), dtype=torch.long))[0, :, 0, 0], 0)
    freq = torch.bincount(samples[:, 0, 0], minlength=4).float() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() < 5 * se + 1e-3).all(), (freq, probs)


# --- denoising corruptions -------------------------------------------------------------


def test_gaussian_noise_is_clipped_additive_noise():
    x = images(4, seed=10)
    y = gaussian_noise(x, 0.3, gen(11))
    expected = (x + 0.3 * torch.randn(x.shape, generator=gen(11))).clamp(0, 1)
    torch.testing.assert_close(y, expected)
    assert ((0 <= y) & (y <= 1)).all()
    assert torch.equal(gaussian_noise(x, 0.0, gen(11)), x)
    sigma = torch.tensor([0.0, 0.1, 0.5, 1.0]).view(4, 1, 1, 1)  # one level per image
    y = gaussian_noise(x, sigma, gen(12))
    assert torch.equal(y[0], x[0]) and not torch.equal(y[1], x[1])
    assert (y[3] - x[3]).abs().mean() > (y[1] - x[1]).abs().mean()


def test_mask_pixels_zeroes_about_p_and_keeps_the_rest():
    x = 0.1 + 0.9 * images(64, seed=13)  # no pixel is 0 to begin with
    p = 0.3
    y = mask_pixels(x, p, gen(14))
    zeroed = y == 0
    n = x.numel()
    assert abs(zeroed.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(y[~zeroed], x[~zeroed])
    assert torch.equal(mask_pixels(x, 0.0, gen(15)), x)
    assert (mask_pixels(x, 1.0, gen(15)) == 0).all()
    assert torch.equal(mask_pixels(x, p, gen(14)), y)  # same seed, same mask
    per_image = torch.tensor([0.0, 0.5]).view(2, 1, 1, 1)
    y = mask_pixels(x[:2], per_image, gen(16))
    assert torch.equal(y[0], x[0])
    assert abs((y[1] == 0).float().mean().item() - 0.5) < 0.1


@pytest.mark.parametrize(
    "call",
    [
        lambda x: gaussian_noise(x, -0.1),
        lambda x: gaussian_noise(x, float("nan")),
        lambda x: mask_pixels(x, 1.5),
        lambda x: mask_pixels(x, -0.1),
        lambda x: mask_pixels(x * 2, 0.5),
        lambda x: gaussian_noise(x[0], 0.1),
    ],
)
def test_corruptions_reject_bad_levels_and_images(call):
    with pytest.raises(ValueError):
        call(images(2))


def test_dae_corrupt():
    model = DAE(DAEConfig(channels=(8, 16)))
    x = 0.1 + 0.8 * images(64, seed=17)  # strictly inside (0, 1)
    x_tilde = model.corrupt(x, gen(18))
    assert x_tilde.shape == x.shape
    assert ((0 <= x_tilde) & (x_tilde <= 1)).all()
    assert not torch.equal(x_tilde, x)
    assert torch.equal(model.corrupt(x, gen(18)), x_tilde)  # same seed, same corruption
    # each image is either masked (every pixel kept or zeroed) or noisy; both kinds occur
    masked = ((x_tilde == x) | (x_tilde == 0)).flatten(1).all(1)
    assert 10 < masked.sum() < 54, masked.sum()
    levels = (x_tilde != x).flatten(1).float().mean(1)[masked]  # masked fractions
    assert levels.max() <= model.config.mask_max + 0.05
    noise = (x_tilde - x)[~masked].flatten(1).std(1)  # about the noise level, below sigma_max
    assert noise.max() < model.config.sigma_max


# --- bad inputs --------------------------------------------------------------------------


def image_models() -> list[tuple[str, torch.nn.Module]]:
    torch.manual_seed(0)
    return [
        ("ae", AE(AEConfig(channels=(8, 16), latent_dim=4))),
        ("ae-linear", AE(AEConfig(latent_dim=4, linear=True))),
        ("dae", DAE(DAEConfig(channels=(8, 16), latent_dim=4))),
        ("vae", VAE(VAEConfig(channels=(8, 16), latent_dim=4))),
        ("vae-mlp", VAE(VAEConfig(mlp=True, hidden_dim=8, latent_dim=4))),
        ("vqvae", tiny_vqvae()),
        ("classifier", Classifier(ClassifierConfig(channels=(8, 16), feature_dim=8))),
    ]


def entry_points(model: torch.nn.Module):
    """Every public method of `model` that takes images."""
    if isinstance(model, Classifier):
        return [model.forward, model.features]
    return [model.forward, model.encode]


x_ok = images(2)
BAD_IMAGES = {
    "3-D": (x_ok[:, 0], r"shape|4-D"),
    "5-D": (x_ok[None], r"shape|4-D"),
    "channels": (images(2, c=3), r"1 channel"),
    "size": (images(2, s=32), r"28x28"),
    "non-square": (torch.rand(2, 1, 28, 32), r"28x28"),
    "uint8": ((x_ok * 255).to(torch.uint8), r"dtype"),
    "int64": (torch.zeros(2, 1, 28, 28, dtype=torch.long), r"dtype"),
    "not a tensor": (x_ok.numpy(), r"ndarray|Tensor|tensor"),
}
BAD_VALUES = {
    "NaN": (torch.where(x_ok > 0.5, torch.nan, x_ok), r"NaN"),
    "inf": (torch.where(x_ok > 0.5, torch.inf, x_ok), r"NaN or inf"),
    "above 1": (x_ok * 255, r"\[0, 1\]"),
    "below 0": (x_ok - 0.5, r"\[0, 1\]"),
}


@pytest.mark.parametrize("bad", list(BAD_IMAGES) + list(BAD_VALUES))
def test_models_reject_bad_images_in_eval_mode(bad):
    x, pattern = {**BAD_IMAGES, **BAD_VALUES}[bad]
    for name, model in image_models():
        model.eval()
        for method in entry_points(model):
            with pytest.raises(ValueError, match=pattern):
                method(x)


@pytest.mark.parametrize("bad", list(BAD_IMAGES))
def test_models_reject_bad_shapes_in_training_mode(bad):
    x, pattern = BAD_IMAGES[bad]
    for name, model in image_models():
        model.train()
        for method in entry_points(model):
            with pytest.raises(ValueError, match=pattern):
                method(x)


@pytest.mark.parametrize("name", ["ae", "ae-linear", "dae", "vae", "vae-mlp"])
def test_decoders_reject_bad_latents(name):
    model = dict(image_models())[name].eval()
    k = model.config.latent_dim
    for z, pattern in [
        (torch.zeros(2, k + 1), rf"\(B, {k}\)"),
        (torch.zeros(2, k - 1), rf"\(B, {k}\)"),
        (torch.zeros(k), rf"\(B, {k}\)"),
        (torch.zeros(2, 1, k), rf"\(B, {k}\)"),
        (torch.zeros(2, k, dtype=torch.long), "float"),
        (torch.full((2, k), torch.nan), "NaN"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            model.decode(z)


def test_vqvae_decode_indices_rejects_bad_indices():
    model = tiny_vqvae().eval()
    g, k = model.config.grid, model.config.codebook_size
    for indices, pattern in [
        (torch.full((2, g, g), k), rf"\[0, {k}\)"),
        (torch.full((2, g, g), -1), rf"\[0, {k}\)"),
        (torch.zeros(2, g + 1, g + 1, dtype=torch.long), rf"\(B, {g}, {g}\)"),
        (torch.zeros(2, g, g - 1, dtype=torch.long), rf"\(B, {g}, {g}\)"),
        (torch.zeros(g, g, dtype=torch.long), rf"\(B, {g}, {g}\)"),
        (torch.zeros(2, g, g), "integer"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            model.decode_indices(indices)


def test_prior_rejects_bad_indices():
    model = Prior(PriorConfig(codebook_size=16, grid=4, channels=8, num_layers=2)).eval()
    for indices, pattern in [
        (torch.full((2, 4, 4), 16), r"\[0, 16\)"),
        (torch.full((2, 4, 4), -1), r"\[0, 16\)"),
        (torch.zeros(2, 5, 5, dtype=torch.long), r"\(B, 4, 4\)"),
        (torch.zeros(4, 4, dtype=torch.long), r"\(B, 4, 4\)"),
        (torch.zeros(2, 4, 4), "integer"),
    ]:
        for method in (model.forward, model.log_prob):
            with pytest.raises(ValueError, match=pattern):
                method(indices)
    for n, temperature in [(0, 1.0), (2, 0.0), (2, -1.0)]:
        with pytest.raises(ValueError):
            model.sample(n, temperature=temperature)


@pytest.mark.parametrize(
    "build",
    [
        lambda: AE(AEConfig(image_size=30)),
        lambda: AE(AEConfig(latent_dim=0)),
        lambda: AE(AEConfig(channels=(8,))),
        lambda: DAE(DAEConfig(image_size=30)),
        lambda: VAE(VAEConfig(image_size=30)),
        lambda: VAE(VAEConfig(latent_dim=0)),
        lambda: VAE(VAEConfig(sigma_dec=0.0)),
        lambda: VAE(VAEConfig(sigma_dec=-0.1)),
        lambda: VAE(VAEConfig(sigma_dec=float("inf"))),
        lambda: VQVAE(VQVAEConfig(image_size=30, channels=(8, 16))),
        lambda: VQVAE(VQVAEConfig(image_size=28, channels=(8, 16, 16))),  # 28 / 8 is not whole
        lambda: VQVAE(VQVAEConfig(channels=())),
        lambda: VQVAE(VQVAEConfig(channels=(8, 16), codebook_size=1)),
        lambda: VectorQuantizer(8, 2, ema_decay=1.0),
        lambda: Prior(PriorConfig(kernel_size=4)),
        lambda: Prior(PriorConfig(kernel_size=1)),
        lambda: Classifier(ClassifierConfig(image_size=30)),
    ],
)
def test_invalid_configs_raise(build):
    with pytest.raises(ValueError):
        build()


def test_mlp_ae_has_a_sigmoid_code_and_rejects_two_kinds():
    model = AE(AEConfig(latent_dim=5, hidden_dim=8)).eval()
    z = model.encode(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 5) and ((z > 0) & (z < 1)).all()
    with pytest.raises(ValueError, match="not both"):
        AE(AEConfig(latent_dim=5, hidden_dim=8, linear=True))
    with pytest.raises(ValueError, match="hidden_dim"):
        AE(AEConfig(latent_dim=5, hidden_dim=-1))
