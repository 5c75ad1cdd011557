"""The vector-quantised VAE (van den Oord, Vinyals & Kavukcuoglu 2017).

The encoder maps an image to a grid of vectors z_e; each vector is replaced by
its nearest codebook entry e_k (z_q); the decoder sees only z_q. The argmin has
no gradient, so the straight-through estimator copies the decoder's gradient
from z_q to z_e.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse.distributed import all_reduce, broadcast
from aecourse.models.conv import check_input


@dataclass
class VQVAEConfig:
    in_channels: int = 1  # 1 for Fashion-MNIST and MNIST, 3 for CIFAR-10
    image_size: int = 28  # side of the square input image
    # one strided conv per entry: 28 -> 14 -> 7
    channels: tuple[int, ...] = (32, 64)
    num_res_blocks: int = 2  # residual blocks on each side of the bottleneck
    embedding_dim: int = 64  # D, the size of each codebook vector
    codebook_size: int = 512  # K, the number of codes
    beta: float = 0.25  # weight of the commitment loss (eq. 3)
    # update the codebook by exponential moving averages (appendix A.1)
    ema: bool = False
    ema_decay: float = 0.99  # decay of those averages
    restart_dead_codes: bool = True  # move unused codes onto encoder outputs

    @property
    def grid(self) -> int:
        """Side of the code grid: the image halved once per strided
        convolution."""
        return self.image_size // 2 ** len(self.channels)


@dataclass
class QuantizerOutput:
    # (B, D, h, w) quantised vectors, with straight-through gradients to z_e
    z_q: Tensor
    indices: Tensor  # (B, h, w) int64 code of every grid cell
    # ||sg[z_e] - e||^2, moves the codes (no gradient with EMA)
    codebook_loss: Tensor
    # ||z_e - sg[e]||^2, keeps the encoder near its codes
    commitment_loss: Tensor
    perplexity: Tensor  # exp(entropy) of the batch's code histogram


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a learned codebook of K vectors of
    size D."""

    def __init__(
        self,
        codebook_size: int,
        embedding_dim: int,
        ema: bool = False,
        ema_decay: float = 0.99,
        restart_dead_codes: bool = True,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or embedding_dim < 1:
            raise ValueError(
                "need codebook_size >= 2 and embedding_dim >= 1, "
                f"got {codebook_size}, {embedding_dim}"
            )
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {ema_decay}")
        self.codebook_size, self.embedding_dim = codebook_size, embedding_dim
        self.ema, self.ema_decay = ema, ema_decay
        self.restart_dead_codes = restart_dead_codes
        bound = 1.0 / codebook_size
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, embedding_dim).uniform_(-bound, bound),
            # with EMA the codebook is updated without gradients
            requires_grad=not ema,
        )
        # EMA of code counts
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        if ema:  # EMA of the sum of the vectors assigned to each code
            self.register_buffer("embed_sum", self.codebook.detach().clone())
        # Codebook set from data yet? By the first training batch, or by
        # loading weights.
        # A Python bool, so that no batch waits on the device to read it.
        self.initialized = False
        self.register_load_state_dict_post_hook(_loaded)

    def nearest(self, z: Tensor) -> Tensor:
        """The index of the nearest code (squared distance) to each row of z
        (N, D)."""
        d = self.embedding_dim
        if z.ndim != 2 or z.shape[1] != d:
            raise ValueError(
                f"z must have shape (N, {d}), got {tuple(z.shape)}"
            )
        z, e = z.float(), self.codebook.float()
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without forming the
        # (N, K, D) differences
        z_sq = z.pow(2).sum(1, keepdim=True)  # (N, 1)
        e_sq = e.pow(2).sum(1)  # (K,)
        distances = z_sq - 2 * z @ e.T + e_sq  # (N, K)
        return distances.argmin(dim=1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes (B, h, w) -> their codebook vectors (B, D, h, w)."""
        if indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                "indices must be an integer tensor, "
                f"got dtype {indices.dtype}"
            )
        if indices.ndim != 3:
            raise ValueError(
                "indices must have shape (B, h, w), "
                f"got {tuple(indices.shape)}"
            )
        k = self.codebook_size
        if indices.numel() and (indices.min() < 0 or indices.max() >= k):
            raise ValueError(
                f"indices must lie in [0, {k}), got values outside"
            )
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def forward(self, z_e: Tensor) -> QuantizerOutput:
        b, d, h, w = z_e.shape
        if d != self.embedding_dim:
            raise ValueError(
                f"z_e must have {self.embedding_dim} channels, got {d}"
            )
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
        if self.training:
            self._maybe_initialize(flat)
        indices = self.nearest(flat.detach())  # (B*h*w,)
        # (B*h*w, K)
        one_hot = F.one_hot(indices, self.codebook_size).type(flat.dtype)
        z_q = self.codebook[indices].view(b, h, w, d)  # (B, h, w, D)
        z_q = z_q.permute(0, 3, 1, 2).to(z_e.dtype)  # (B, D, h, w)
        # after the lookup: the batch is quantised with the codes it saw
        if self.training:
            self._update_statistics(flat.detach(), one_hot)

        # eq. 3 of van den Oord et al. 2017: sg[] is .detach()
        # moves e towards sg[z_e]
        codebook_loss = F.mse_loss(z_q, z_e.detach())
        # moves z_e towards sg[e]
        commitment_loss = F.mse_loss(z_e, z_q.detach())

        probs = one_hot.mean(0)  # (K,) code frequencies in this batch
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        # straight-through: forward z_q, backward identity
        z_q = z_e + (z_q - z_e).detach()
        indices = indices.view(b, h, w)
        return QuantizerOutput(
            z_q, indices, codebook_loss, commitment_loss, perplexity
        )

    @torch.no_grad()
    def _maybe_initialize(self, flat: Tensor) -> None:
        """Set the codebook to encoder outputs of the first batch, so every
        code starts where the data are (a common fix for codes that are never
        chosen)."""
        if self.initialized:
            return
        self.codebook.data.copy_(self._random_rows(flat, self.codebook_size))
        if self.ema:
            self.embed_sum.copy_(self.codebook.data)
        self.initialized = True

    @torch.no_grad()
    def _update_statistics(self, flat: Tensor, one_hot: Tensor) -> None:
        # all_reduce sums over the processes of a torchrun job (none on one
        # process): every process then sees the statistics of the global batch
        counts = all_reduce(one_hot.sum(0))  # (K,)
        decay = self.ema_decay
        num_codes = self.codebook_size
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        # appendix A.1: e_k = (EMA of sums) / (EMA of counts), smoothed
        if self.ema:
            sums = all_reduce(one_hot.T @ flat.float())  # (K, D)
            self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + 1e-5) / (n + num_codes * 1e-5) * n
            self.codebook.data.copy_(self.embed_sum / smoothed.unsqueeze(1))
        # branch-free, so that no batch waits on the device
        if self.restart_dead_codes:
            # dead: unused in this batch and, on average, by under 1 % of a
            # fair share
            rare = self.cluster_size < 1e-2 * counts.sum() / num_codes
            dead = (rare & (counts == 0)).unsqueeze(1)  # (K, 1)
            fresh = self._random_rows(flat, num_codes)  # (K, D) candidates
            codebook = torch.where(dead, fresh, self.codebook.data)
            self.codebook.data.copy_(codebook)
            if self.ema:
                self.embed_sum.copy_(torch.where(dead, fresh, self.embed_sum))
            cluster_size = torch.where(dead.squeeze(1), 1.0, self.cluster_size)
            self.cluster_size.copy_(cluster_size)

    def _random_rows(self, flat: Tensor, n: int) -> Tensor:
        """n rows of flat drawn at random (with replacement), process 0's on
        every process."""
        index = torch.randint(len(flat), (n,), device=flat.device)
        return broadcast(flat[index].float())


def _loaded(quantizer: VectorQuantizer, incompatible_keys: object) -> None:
    """After load_state_dict: a loaded codebook is trained, never reset from
    data."""
    quantizer.initialized = True


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in the VQ-VAE paper's encoder
    and decoder."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


@dataclass
class VQVAEOutput:
    x_hat: Tensor  # (B, C, H, W) reconstruction in [0, 1]
    z_e: Tensor  # (B, D, h, w) encoder output
    # (B, D, h, w) quantised (straight-through) vectors fed to the decoder
    z_q: Tensor
    indices: Tensor  # (B, h, w) codes
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor


class VQVAE(nn.Module):
    """Encoder -> 1x1 projection to D -> VectorQuantizer -> decoder."""

    config_class = VQVAEConfig

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.channels
        if not widths or config.image_size % 2 ** len(widths):
            raise ValueError(
                f"image_size {config.image_size} must be divisible by "
                f"2**len(channels) for channels {widths}"
            )
        top, hidden = widths[-1], max(widths[-1] // 2, 1)

        down: list[nn.Module] = []
        c_in = config.in_channels
        for c_out in widths:  # each strided conv halves the image
            down += [
                nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                nn.ReLU(),
            ]
            c_in = c_out
        down += [
            ResidualBlock(top, hidden) for _ in range(config.num_res_blocks)
        ]
        self.encoder = nn.Sequential(*down, nn.ReLU())
        self.pre_quant = nn.Conv2d(top, config.embedding_dim, kernel_size=1)
        self.quantizer = VectorQuantizer(
            config.codebook_size,
            config.embedding_dim,
            config.ema,
            config.ema_decay,
            config.restart_dead_codes,
        )
        up: list[nn.Module] = [
            nn.Conv2d(config.embedding_dim, top, kernel_size=3, padding=1)
        ]
        up += [
            ResidualBlock(top, hidden) for _ in range(config.num_res_blocks)
        ]
        up.append(nn.ReLU())
        outs = [*widths[::-1][1:], config.in_channels]
        c_in = top
        # each transposed conv doubles the image
        for i, c_out in enumerate(outs):
            up.append(
                nn.ConvTranspose2d(
                    c_in, c_out, kernel_size=4, stride=2, padding=1
                )
            )
            if i + 1 < len(outs):
                up.append(nn.ReLU())
            c_in = c_out
        self.decoder = nn.Sequential(*up, nn.Sigmoid())

    def _z_e(self, x: Tensor) -> Tensor:
        check_input(self, x)
        return self.pre_quant(self.encoder(x))  # (B, D, h, w)

    def forward(self, x: Tensor) -> VQVAEOutput:
        z_e = self._z_e(x)  # (B, D, 7, 7)
        q = self.quantizer(z_e)
        x_hat = self.decoder(q.z_q)  # (B, C, 28, 28)
        return VQVAEOutput(
            x_hat,
            z_e,
            q.z_q,
            q.indices,
            q.codebook_loss,
            q.commitment_loss,
            q.perplexity,
        )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> code indices (B, h, w)."""
        z_e = self._z_e(x)
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        return self.quantizer.nearest(flat).view(b, h, w)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Code indices (B, h, w) -> images (B, C, H, W)."""
        g = self.config.grid
        if indices.ndim != 3 or indices.shape[1:] != (g, g):
            raise ValueError(
                f"indices must have shape (B, {g}, {g}), "
                f"got {tuple(indices.shape)}"
            )
        return self.decoder(self.quantizer.lookup(indices))

    def reconstruct(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the decoded codes of x (B, C, H, W)."""
        return self.decode_indices(self.encode(x))

    def decode_images(self, indices: Tensor) -> Tensor:
        """The latents are code grids: decode_indices,
        (B, h, w) -> (B, C, H, W)."""
        return self.decode_indices(indices)
