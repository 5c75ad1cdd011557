"""A gated PixelCNN prior over the VQ-VAE's code grid
(van den Oord et al. 2016).

p(indices) = prod_i p(k_i | k_<i) in raster order (row by row, left to right).
Two stacks of masked convolutions keep every output blind to the current and
later cells while leaving no blind spot: the vertical stack sees the rows
above, the horizontal stack the cells to the left in the current row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse import sampling


@dataclass
class PriorConfig:
    codebook_size: int = 512  # K, the number of codes (the VQ-VAE's)
    grid: int = 7  # side of the code grid
    channels: int = 64  # width of each gated layer
    # gated layers; the receptive field grows by one cell per layer
    num_layers: int = 7
    kernel_size: int = 3  # odd width of the masked convolutions


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel is multiplied by a fixed 0/1 mask."""

    def __init__(
        self, c_in: int, c_out: int, kernel: tuple[int, int], mask: Tensor
    ) -> None:
        super().__init__(
            c_in, c_out, kernel, padding=(kernel[0] // 2, kernel[1] // 2)
        )
        self.register_buffer(
            "mask", mask.expand_as(self.weight).clone(), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.weight * self.mask, self.bias, padding=self.padding
        )


class GatedLayer(nn.Module):
    """One gated PixelCNN layer: tanh(a) * sigmoid(b) on a vertical and a
    horizontal stack.

    first=True is mask 'A': the vertical kernel keeps only the row above the
    cell and the horizontal kernel only the cells to its left. Later layers use
    mask 'B', which also keeps the cell's own row (vertical) or the cell itself
    (horizontal): their inputs there already exclude the cell, so the vertical
    stack at row i depends on rows < i alone and the horizontal stack on the
    cells left of (i, j) and the rows above.
    """

    def __init__(self, channels: int, kernel_size: int, first: bool) -> None:
        super().__init__()
        k, c = kernel_size, channels
        cut = k // 2 + (0 if first else 1)  # the first position masked out
        v_mask = torch.ones(k, k)
        v_mask[cut:] = 0  # rows strictly above (A) / up to this one (B)
        h_mask = torch.ones(1, k)
        h_mask[0, cut:] = 0  # cells strictly left (A) / up to this one (B)
        self.v_conv = MaskedConv2d(c, 2 * c, (k, k), v_mask)
        self.h_conv = MaskedConv2d(c, 2 * c, (1, k), h_mask)
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)
        self.first = first

    @staticmethod
    def gate(h: Tensor) -> Tensor:
        a, b = h.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        # (B, 2C, g, g); at row i it depends on rows < i only
        v_feat = self.v_conv(v)
        return self.gate(v_feat), self.horizontal(h, v_feat)

    def horizontal(self, h: Tensor, v_feat: Tensor) -> Tensor:
        """The horizontal stack's new h: the cells to the left, plus the rows above
        (v_feat, the vertical stack's features of the same rows)."""
        h_feat = self.h_conv(h) + self.v_to_h(v_feat)
        h_new = self.h_out(self.gate(h_feat))
        if not self.first:
            h_new = h_new + h  # residual connection on the horizontal stack
        return h_new


class Prior(nn.Module):
    """Autoregressive categorical model of (B, grid, grid) code indices."""

    config_class = PriorConfig

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        if config.kernel_size % 2 == 0 or config.kernel_size < 3:
            raise ValueError(
                f"kernel_size must be odd and >= 3, got {config.kernel_size}"
            )
        self.config = config
        c = config.channels
        self.embed = nn.Embedding(config.codebook_size, c)
        self.layers = nn.ModuleList(
            GatedLayer(c, config.kernel_size, first=i == 0)
            for i in range(config.num_layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 1),
            nn.ReLU(),
            nn.Conv2d(2 * c, config.codebook_size, 1),
        )

    def _check(self, indices: Tensor) -> None:
        g, k = self.config.grid, self.config.codebook_size
        if not isinstance(indices, Tensor) or indices.dtype not in (
            torch.int32,
            torch.int64,
        ):
            raise ValueError(
                "indices must be an integer tensor of shape (B, grid, grid)"
            )
        if indices.ndim != 3 or tuple(indices.shape[1:]) != (g, g):
            raise ValueError(
                f"indices must have shape (B, {g}, {g}), "
                f"got {tuple(indices.shape)}"
            )
        if not self.training and (indices.min() < 0 or indices.max() >= k):
            raise ValueError(
                f"indices must lie in [0, {k}), got values outside"
            )

    def forward(self, indices: Tensor) -> Tensor:
        """Codes (B, g, g) -> logits (B, K, g, g) of p(k_i | k_<i) at every
        cell."""
        self._check(indices)
        return self.head(self._features(indices))

    def _features(self, indices: Tensor) -> Tensor:
        """The horizontal stack's output (B, C, g, g) for codes (B, g, g).

        No output looks down: the features of rows 0..i are the same whether or
        not the rows below are present (the tests feed it fewer rows)."""
        x = self.embed(indices).permute(0, 3, 1, 2)  # (B, C, rows, g)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return h

    def log_prob(self, indices: Tensor) -> Tensor:
        """log p(indices) in nats, one number per grid: (B,)."""
        logits = self.forward(indices)
        return -F.cross_entropy(logits, indices, reduction="none").sum(
            dim=(1, 2)
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """n code grids (n, g, g) drawn cell by cell in raster order.

        The vertical stack at row i sees rows < i only: it runs once per row,
        on rows 0..i (row i, still zeros, is masked out). The horizontal stack
        then runs on row i alone, cells 0..j, for each cell (i, j); the head on
        that one cell. The draws are those of the plain sampler, which reruns
        the whole network on the whole grid for every cell (about 2g^2 / (g + 1)
        times the work), up to rounding: a near tie can flip a draw."""
        if n <= 0 or temperature <= 0:
            raise ValueError(
                "need n > 0 and temperature > 0, "
                f"got n={n}, temperature={temperature}"
            )
        g = self.config.grid
        device = self.embed.weight.device
        indices = torch.zeros((n, g, g), dtype=torch.long, device=device)
        for i in range(g):
            # each layer's vertical features of row i, (n, 2C, 1, g)
            v = self.embed(indices[:, : i + 1]).permute(0, 3, 1, 2)
            v_row = []
            for layer in self.layers:
                v_feat = layer.v_conv(v)
                v_row.append(v_feat[:, :, i:])
                v = layer.gate(v_feat)
            for j in range(g):
                # row i up to cell j: (n, C, 1, j + 1)
                h = self.embed(indices[:, i : i + 1, : j + 1]).permute(0, 3, 1, 2)
                for layer, v_feat in zip(self.layers, v_row):
                    h = layer.horizontal(h, v_feat[..., : j + 1])
                logits = self.head(h[..., j:])[:, :, 0, 0] / temperature  # (n, K)
                probs = torch.softmax(logits.float(), dim=1)
                indices[:, i, j] = sampling.categorical(probs, generator)
        return indices
