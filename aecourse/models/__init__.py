"""The course's models, each with a typed config and a typed forward result."""

from aecourse.models.ae import AE, AEConfig, AEOutput
from aecourse.models.classifier import Classifier, ClassifierConfig
from aecourse.models.dae import DAE, DAEConfig, gaussian_noise, mask_pixels
from aecourse.models.prior import Prior, PriorConfig
from aecourse.models.sae import SAE, SAEConfig, SAEOutput, aux_code, top_k_code
from aecourse.models.vae import VAE, VAEConfig, VAEOutput
from aecourse.models.vqvae import (
    VQVAE,
    QuantizerOutput,
    ResidualBlock,
    VectorQuantizer,
    VQVAEConfig,
    VQVAEOutput,
)

# class name (as written in a model card) -> class; each class knows its config_class
MODEL_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (AE, DAE, VAE, VQVAE, Prior, Classifier, SAE)
}

__all__ = [
    "AE", "AEConfig", "AEOutput", "DAE", "DAEConfig", "gaussian_noise", "mask_pixels",
    "VAE", "VAEConfig", "VAEOutput", "VQVAE", "VQVAEConfig", "VQVAEOutput",
    "VectorQuantizer", "QuantizerOutput", "ResidualBlock", "Prior", "PriorConfig",
    "Classifier", "ClassifierConfig", "SAE", "SAEConfig", "SAEOutput", "aux_code", "top_k_code",
    "MODEL_CLASSES",
]
