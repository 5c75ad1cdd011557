"""How each shipped model is trained: architecture, configuration, loss, epochs, batch, lr.

`python -m aecourse.train NAME` follows `RECIPES[NAME]`; the model cards record what was
actually run. Epoch counts are sized for a CPU (about 50 s per epoch for the small conv
models) and are enough for the course's figures; a GPU makes them minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from aecourse import losses
from aecourse.models import (
    AE,
    DAE,
    VAE,
    VQVAE,
    AEConfig,
    Classifier,
    ClassifierConfig,
    DAEConfig,
    Prior,
    PriorConfig,
    SAE,
    SAEConfig,
    VAEConfig,
    VQVAEConfig,
)


@dataclass(frozen=True)
class Recipe:
    model_class: type[nn.Module]  # the architecture, built from `config`
    config: Any  # the model's config dataclass (copied, never modified, by `model()`)
    loss: Callable[[nn.Module, tuple[Tensor, ...], torch.Generator | None], losses.Loss]
    epochs: int  # passes over the training set
    batch_size: int = 128  # images (or code grids) per step
    lr: float = 1e-3  # Adam learning rate
    description: str = ""  # one line for listings
    data: str = "fashion-mnist"  # training images (see aecourse.data.DATASETS)
    codes_from: str | None = None  # train on this pretrained VQ-VAE's code indices (the prior)
    activations_from: str | None = None  # train on this pretrained classifier's penultimate features

    def model(self, **overrides: Any) -> nn.Module:
        """A freshly initialised model; `overrides` replace config fields (e.g. in_channels=3)."""
        return self.model_class(replace(self.config, **overrides))


# the small MLP VAE of the posterior-collapse models
SMALL_MLP = VAEConfig(mlp=True, latent_dim=16, hidden_dim=128)
# the contractive AE and its control (chapter 3): a small MLP, because the
# penalty costs one backward pass per code unit
MLP_AE = AEConfig(latent_dim=16, hidden_dim=128)
# weight of ||J_e(x)||_F^2: the largest of 0.001, 0.01, 0.1 and 1 that costs
# under 1 dB of PSNR against lambda = 0 on 5,000 held-out training images after
# one epoch (`python scripts/cae_lambda_pilot.py`: 0.92 dB). The bar is close:
# after 4 epochs (--epochs 4) 0.1 costs 1.25 dB and the rule picks 0.01; the
# shipped pair, after 8 epochs, differs by 0.83 dB on the test set
CAE_LAMBDA = 0.1

RECIPES: dict[str, Recipe] = {
    "ae": Recipe(AE, AEConfig(latent_dim=16, channels=(32, 64, 128)), losses.ae_loss, epochs=60,
                 description="convolutional autoencoder, 16-D latent"),
    "ae-2d": Recipe(AE, AEConfig(latent_dim=2), losses.ae_loss, epochs=8,
                    description="convolutional autoencoder, 2-D latent for maps"),
    "ae-linear": Recipe(AE, AEConfig(latent_dim=16, linear=True), losses.ae_loss, epochs=60, lr=2e-3,
                        description="linear autoencoder, 16-D latent: the PCA comparison"),
    "dae": Recipe(DAE, DAEConfig(latent_dim=64, channels=(32, 64, 128)), losses.dae_loss, epochs=30,
                  description="denoising autoencoder (Gaussian noise and pixel masking), 64-D latent"),
    "dae-16": Recipe(DAE, DAEConfig(latent_dim=16, channels=(32, 64, 128)), losses.dae_loss, epochs=60,
                     description="denoising autoencoder, 16-D latent: the ae recipe, corrupted inputs"),
    "vae": Recipe(VAE, VAEConfig(latent_dim=16, channels=(32, 64, 128)), losses.vae_loss, epochs=20,
                  description="convolutional VAE with a Bernoulli decoder, 16-D latent"),
    "vae-2d": Recipe(VAE, VAEConfig(latent_dim=2), losses.vae_loss, epochs=8,
                     description="convolutional VAE, 2-D latent for maps"),
    "vae-mlp": Recipe(VAE, VAEConfig(mlp=True, latent_dim=20), losses.vae_loss, epochs=20,
                      description="the classic 784-400-20 MLP VAE baseline, same epochs as vae"),
    # posterior collapse and its remedies (chapter 4): small MLP VAEs
    "vae-mlp-16": Recipe(VAE, SMALL_MLP, losses.vae_loss, epochs=10,
                         description="small MLP VAE (784-128-16), beta = 1: the reference"),
    "vae-mlp-beta4": Recipe(VAE, SMALL_MLP, partial(losses.vae_loss, beta=4.0), epochs=10,
                            description="small MLP VAE, beta = 4: posterior collapse"),
    "vae-mlp-freebits": Recipe(VAE, SMALL_MLP, partial(losses.free_bits_vae_loss, beta=4.0, floor=0.5),
                               epochs=10, description="small MLP VAE, beta = 4 with free bits (0.5 nats)"),
    "vae-mlp-warmup": Recipe(VAE, SMALL_MLP, losses.KLWarmup(beta=4.0, fraction=0.5), epochs=10,
                             description="small MLP VAE, beta warmed up from 0 to 4"),
    # the decoder's likelihood (chapter 4): Gaussian decoders with a fixed sigma_dec,
    # trained on grey images; sigma_dec^2 acts as a KL weight beta = 2 sigma_dec^2 on sum-MSE
    **{
        f"vae-gauss-{sigma}": Recipe(VAE, replace(SMALL_MLP, sigma_dec=sigma), losses.vae_loss, epochs=10,
                                     description=f"small MLP VAE, Gaussian decoder, sigma_dec = {sigma}")
        for sigma in (0.03, 0.1, 0.3, 1.0)
    },
    # conditional generation (chapter 4): vae-mlp-16 with the class label y
    "cvae-mlp-16": Recipe(VAE, replace(SMALL_MLP, num_classes=10), losses.vae_loss, epochs=10,
                          description="small conditional MLP VAE (784-128-16), given the class"),
    "cvae-mlp-16-beta4": Recipe(VAE, replace(SMALL_MLP, num_classes=10), partial(losses.vae_loss, beta=4.0),
                                epochs=10, description="cvae-mlp-16 trained with beta = 4"),
    "vqvae": Recipe(VQVAE, VQVAEConfig(), losses.vqvae_loss, epochs=8,
                    description="VQ-VAE, 7x7 grid of codes from a 512-code codebook"),
    "prior": Recipe(Prior, PriorConfig(), losses.prior_loss, epochs=4,
                    codes_from="vqvae",
                    description="gated PixelCNN prior over the vqvae's code grids"),
    "ae-mlp": Recipe(AE, MLP_AE, losses.ae_loss, epochs=8,
                     description="MLP autoencoder (784-128-16, sigmoid code): the cae's control"),
    "cae": Recipe(AE, MLP_AE, partial(losses.cae_loss, lam=CAE_LAMBDA), epochs=8,
                  description="contractive autoencoder: ae-mlp's network, + lambda ||J_e(x)||_F^2"),
    "classifier": Recipe(Classifier, ClassifierConfig(), losses.classifier_loss, epochs=5,
                         description="small CNN classifier, the feature space of the Frechet distance"),
    # sparse autoencoders of the classifier's 128 penultimate features (chapter 2)
    "sae": Recipe(SAE, SAEConfig(features=512, topk=16), losses.sae_loss, epochs=20, batch_size=256,
                  activations_from="classifier",
                  description="top-16 sparse autoencoder, 512 features of the classifier's 128"),
    "sae-l1": Recipe(SAE, SAEConfig(features=512, topk=None), partial(losses.sae_loss, alpha=4.0),
                     epochs=20, batch_size=256, activations_from="classifier",
                     description="ReLU sparse autoencoder with an L1 penalty (alpha = 4): about sae's L0"),
    # sae + the AuxK loss of Gao et al. 2024 (A.2), with their alpha_aux = 1/32. A feature is
    # dead after 10,000 silent training inputs (the size of the test set on which the cards
    # call a feature dead); k_aux = 64 = n/2, as their k_aux = 512 is of the order of half
    # their activations' width: the residual has n = 128 dimensions, so more would not help
    "sae-aux": Recipe(SAE, SAEConfig(features=512, topk=16, dead_after=10_000),
                      partial(losses.sae_loss, alpha_aux=1 / 32, k_aux=64), epochs=20, batch_size=256,
                      activations_from="classifier",
                      description="sae + the AuxK loss (alpha_aux = 1/32, k_aux = 64): fewer dead features"),
}
