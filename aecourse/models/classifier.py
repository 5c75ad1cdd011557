"""A small Fashion-MNIST classifier, the feature extractor of the sample-quality metric.

The Frechet distance compares the statistics of these features on generated images with
those on test images, as FID does with an Inception network (Heusel et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from aecourse.models.conv import ConvEncoder, check_input


@dataclass
class ClassifierConfig:
    in_channels: int = 1  # 1 for Fashion-MNIST
    image_size: int = 28  # side of the square input image
    num_classes: int = 10  # output classes
    channels: tuple[int, ...] = (32, 64)  # conv widths of the trunk
    feature_dim: int = 128  # size of the penultimate features used by the metric


class Classifier(nn.Module):
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        trunk = ConvEncoder(config.in_channels, config.channels, config.image_size)
        self.body = nn.Sequential(
            trunk, nn.Dropout(0.25), nn.Linear(trunk.out_features, config.feature_dim), nn.SiLU()
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] -> features (B, feature_dim)."""
        check_input(self, x)
        return self.body(x)

    def classify(self, features: Tensor) -> Tensor:
        """Penultimate features (B, feature_dim) -> class logits (B, num_classes): the
        last layer alone, e.g. for features a sparse autoencoder rebuilt."""
        d = self.config.feature_dim
        if features.ndim != 2 or features.shape[1] != d:
            raise ValueError(f"expected features of shape (B, {d}), got {tuple(features.shape)}")
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        """Images -> class logits (B, num_classes)."""
        return self.classify(self.features(x))
