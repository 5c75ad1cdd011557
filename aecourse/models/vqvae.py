"""The vector-quantised VAE (van den Oord, Vinyals & Kavukcuoglu 2017).

The encoder maps an image to a grid of vectors z_e; each vector is replaced by its nearest
codebook entry e_k (z_q); the decoder sees only z_q. The argmin has no gradient, so the
straight-through estimator copies the decoder's gradient from z_q to z_e.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse.data import check_images


@dataclass
class VQVAEConfig:
    in_channels: int = 1  # 1 for Fashion-MNIST and MNIST, 3 for CIFAR-10
    image_size: int = 28  # side of the square input image
    channels: tuple[int, ...] = (32, 64)  # one strided conv per entry: 28 -> 14 -> 7
    num_res_blocks: int = 2  # residual blocks on each side of the bottleneck
    embedding_dim: int = 64  # D, the size of each codebook vector
    codebook_size: int = 512  # K, the number of codes
    beta: float = 0.25  # weight of the commitment loss (eq. 3)
    ema: bool = False  # update the codebook by exponential moving averages (appendix A.1)
    ema_decay: float = 0.99  # decay of those averages
    restart_dead_codes: bool = True  # move unused codes onto encoder outputs

    @property
    def grid(self) -> int:
        """Side of the code grid: the image halved once per strided convolution."""
        return self.image_size // 2 ** len(self.channels)


@dataclass
class QuantizerOutput:
    z_q: Tensor  # (B, D, h, w) quantised vectors, with straight-through gradients to z_e
    indices: Tensor  # (B, h, w) int64 code of every grid cell
    codebook_loss: Tensor  # ||sg[z_e] - e||^2, moves the codes (zero with EMA updates)
    commitment_loss: Tensor  # ||z_e - sg[e]||^2, keeps the encoder near its codes
    perplexity: Tensor  # exp(entropy) of the batch's code histogram


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a learned codebook of K vectors of size D."""

    def __init__(
        self,
        codebook_size: int,
        embedding_dim: int,
        beta: float = 0.25,
        ema: bool = False,
        ema_decay: float = 0.99,
        restart_dead_codes: bool = True,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or embedding_dim < 1:
            raise ValueError(
                f"need codebook_size >= 2 and embedding_dim >= 1, got {codebook_size}, {embedding_dim}"
            )
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {ema_decay}")
        self.codebook_size, self.embedding_dim = codebook_size, embedding_dim
        self.beta, self.ema, self.ema_decay = beta, ema, ema_decay
        self.restart_dead_codes = restart_dead_codes
        bound = 1.0 / codebook_size
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, embedding_dim).uniform_(-bound, bound),
            requires_grad=not ema,  # with EMA the codebook is updated without gradients
        )
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # EMA of code counts
        self.register_buffer("embed_sum", self.codebook.detach().clone())  # EMA of sums (EMA only)
        self.register_buffer("initialized", torch.tensor(False))  # codebook set from data yet?
        self._initialized = False

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the closest code (squared Euclidean distance) for each row of z (N, D)."""
        if z.ndim != 2 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"z must have shape (N, {self.embedding_dim}), got {tuple(z.shape)}")
        z, e = z.float(), self.codebook.float()
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without forming the (N, K, D) differences
        distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)  # (N, K)
        return distances.argmin(dim=1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes (B, h, w) -> their codebook vectors (B, D, h, w)."""
        if indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"indices must be an integer tensor, got dtype {indices.dtype}")
        if indices.ndim != 3:
            raise ValueError(f"indices must have shape (B, h, w), got {tuple(indices.shape)}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got values outside")
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def forward(self, z_e: Tensor) -> QuantizerOutput:
        b, d, h, w = z_e.shape
        if d != self.embedding_dim:
            raise ValueError(f"z_e must have {self.embedding_dim} channels, got {d}")
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
        if self.training:
            self._maybe_initialize(flat)
        indices = self.nearest(flat.detach())  # (B*h*w,)
        one_hot = F.one_hot(indices, self.codebook_size).type(flat.dtype)  # (B*h*w, K)
        z_q = self.codebook[indices].view(b, h, w, d).permute(0, 3, 1, 2).to(z_e.dtype)
        if self.training:  # after the lookup: this batch is quantised with the codebook it saw
            self._update_statistics(flat.detach(), one_hot)

        # eq. 3 of van den Oord et al. 2017: sg[] is .detach()
        codebook_loss = F.mse_loss(z_q, z_e.detach())  # moves e towards sg[z_e]
        commitment_loss = F.mse_loss(z_e, z_q.detach())  # moves z_e towards sg[e]
        if self.ema:  # the codebook moves by the averages instead of this gradient
            codebook_loss = codebook_loss.detach() * 0.0

        probs = one_hot.mean(0)  # (K,) code frequencies in this batch
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        z_q = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, backward identity
        return QuantizerOutput(z_q, indices.view(b, h, w), codebook_loss, commitment_loss, perplexity)

    @torch.no_grad()
    def _maybe_initialize(self, flat: Tensor) -> None:
        """Set the codebook to encoder outputs of the first batch, so every code starts
        where the data are (a common fix for codes that are never chosen)."""
        if self._initialized:  # a Python flag, so that no batch waits on the device
            return
        if bool(self.initialized):  # loaded from a checkpoint
            self._initialized = True
            return
        self.codebook.data.copy_(self._random_rows(flat, self.codebook_size))
        self.embed_sum.copy_(self.codebook.data)
        self.initialized.fill_(True)
        self._initialized = True

    @torch.no_grad()
    def _update_statistics(self, flat: Tensor, one_hot: Tensor) -> None:
        counts = one_hot.sum(0)  # (K,)
        sums = one_hot.T @ flat.float()  # (K, D)
        if dist.is_available() and dist.is_initialized():  # every rank sees the global batch
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        decay = self.ema_decay
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        if self.ema:  # appendix A.1: e_k = (EMA of sums) / (EMA of counts), Laplace-smoothed
            self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + 1e-5) / (n + self.codebook_size * 1e-5) * n
            self.codebook.data.copy_(self.embed_sum / smoothed.unsqueeze(1))
        if self.restart_dead_codes:  # branch-free, so that no batch waits on the device
            # dead: unused in this batch and, on average, by fewer than 1 % of a fair share
            rare = self.cluster_size < 1e-2 * counts.sum() / self.codebook_size
            dead = (rare & (counts == 0)).unsqueeze(1)
            fresh = self._random_rows(flat, self.codebook_size)  # (K, D) candidates
            self.codebook.data.copy_(torch.where(dead, fresh, self.codebook.data))
            self.embed_sum.copy_(torch.where(dead, fresh, self.embed_sum))
            self.cluster_size.copy_(torch.where(dead.squeeze(1), 1.0, self.cluster_size))

    def _random_rows(self, flat: Tensor, n: int) -> Tensor:
        """n rows of flat chosen at random (with replacement when needed), identical on
        every rank of a distributed run."""
        index = torch.randint(len(flat), (n,), device=flat.device)
        rows = flat[index].float()
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(rows, src=0)
        return rows


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in the VQ-VAE paper's encoder and decoder."""

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
    z_q: Tensor  # (B, D, h, w) quantised (straight-through) vectors fed to the decoder
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
                f"image_size {config.image_size} must be divisible by 2**len(channels) for channels {widths}"
            )
        top, hidden = widths[-1], max(widths[-1] // 2, 1)

        down: list[nn.Module] = []
        c_in = config.in_channels
        for c_out in widths:  # each strided conv halves the image
            down += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        down += [ResidualBlock(top, hidden) for _ in range(config.num_res_blocks)]
        self.encoder = nn.Sequential(*down, nn.ReLU())
        self.pre_quant = nn.Conv2d(top, config.embedding_dim, kernel_size=1)
        self.quantizer = VectorQuantizer(
            config.codebook_size, config.embedding_dim, config.beta,
            config.ema, config.ema_decay, config.restart_dead_codes,
        )
        up: list[nn.Module] = [nn.Conv2d(config.embedding_dim, top, kernel_size=3, padding=1)]
        up += [ResidualBlock(top, hidden) for _ in range(config.num_res_blocks)]
        up.append(nn.ReLU())
        outs = [*widths[::-1][1:], config.in_channels]
        c_in = top
        for i, c_out in enumerate(outs):  # each transposed conv doubles the image
            up.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if i + 1 < len(outs):
                up.append(nn.ReLU())
            c_in = c_out
        self.decoder = nn.Sequential(*up, nn.Sigmoid())

    def _z_e(self, x: Tensor) -> Tensor:
        check_images(
            x, channels=self.config.in_channels, size=self.config.image_size,
            values=not self.training,  # training data are checked once, at load time
        )
        return self.pre_quant(self.encoder(x))  # (B, D, h, w)

    def forward(self, x: Tensor) -> VQVAEOutput:
        z_e = self._z_e(x)  # (B, D, 7, 7)
        q = self.quantizer(z_e)
        x_hat = self.decoder(q.z_q)  # (B, C, 28, 28)
        return VQVAEOutput(
            x_hat, z_e, q.z_q, q.indices, q.codebook_loss, q.commitment_loss, q.perplexity
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
            raise ValueError(f"indices must have shape (B, {g}, {g}), got {tuple(indices.shape)}")
        return self.decoder(self.quantizer.lookup(indices))
