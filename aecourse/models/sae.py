"""A sparse autoencoder: an overcomplete dictionary of a network's activations.

An input h (the classifier's penultimate activations, width n) gets a code z of F > n
features, most of them zero, and is rebuilt as a sum of a few dictionary atoms:

    z = code(W_enc (h - b_dec) + b_enc),    h_hat = W_dec z + b_dec = sum_j z_j d_j + b_dec

The code is either a ReLU, made sparse by an L1 penalty on z in the loss
(`losses.sae_loss`; Olshausen & Field 1996, Bricken et al. 2023, Cunningham et al. 2023),
or a top-t code that keeps the t largest pre-activations and zeroes the rest (the k of
Makhzani & Frey 2014 and Gao et al. 2024). The atoms d_j, the columns of W_dec, have unit
norm, so that the penalty cannot be dodged by shrinking z and growing W_dec.

A top-t code can leave features dead: never among the t largest, they get no gradient and
stay so. With `dead_after` set, the model counts, in training mode, the training inputs
since each feature last fired; those silent for `dead_after` inputs count as dead, and
`losses.sae_loss(..., alpha_aux, k_aux)` adds Gao et al.'s (2024, appendix A.2) AuxK
term, which asks the dead features to model what the live ones leave unexplained
(`aux_code`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize


@dataclass
class SAEConfig:
    input_dim: int = 128  # n: width of the activations it reads (the classifier's feature_dim)
    features: int = 512  # F: dictionary size, the width of the code (overcomplete: F > n)
    topk: int | None = 16  # t: features kept per input; None: a ReLU code (with an L1 penalty)
    # N_dead: a feature silent on this many consecutive training inputs counts as dead
    # (the AuxK loss of Gao et al. 2024); None: no count is kept
    dead_after: int | None = None


@dataclass
class SAEOutput:
    h_hat: Tensor  # (B, n) reconstruction of the activations
    z: Tensor  # (B, F) sparse code, non-negative
    pre: Tensor  # (B, F) pre-activations W_enc (h - b_dec) + b_enc, before the code


def top_k_code(pre: Tensor, t: int) -> Tensor:
    """Keep the t largest entries of each row of pre (B, F), zero the rest,
    then apply a ReLU (Gao et al. 2024): at most t nonzeros per row, exactly
    t where the t-th largest entry is positive. Gradients flow to the kept
    entries only."""
    if pre.ndim != 2:
        raise ValueError(
            f"expected pre-activations of shape (B, F), got {tuple(pre.shape)}"
        )
    width = pre.shape[1]
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= width:
        raise ValueError(
            f"t must be an integer in [1, {width}] (the code width), "
            f"got {t!r}"
        )
    values, indices = pre.topk(t, dim=1)  # (B, t) each
    return torch.zeros_like(pre).scatter(1, indices, F.relu(values))


def aux_code(pre: Tensor, dead: Tensor, k_aux: int) -> Tensor:
    """The AuxK code of Gao et al. (2024, A.2): the top-k_aux of the dead
    features' pre-activations in each row of pre (B, F), after a ReLU; zero for
    live features and all zero when none is dead. dead: (F,) bool. Fewer than
    k_aux dead features: all of them."""
    if pre.ndim != 2:
        raise ValueError(
            f"expected pre-activations of shape (B, F), got {tuple(pre.shape)}"
        )
    if dead.shape != pre.shape[1:] or dead.dtype != torch.bool:
        raise ValueError(
            f"dead must be a bool mask of shape ({pre.shape[1]},), "
            f"got {dead.dtype} of shape {tuple(dead.shape)}"
        )
    if isinstance(k_aux, bool) or not isinstance(k_aux, int) or k_aux < 1:
        raise ValueError(f"k_aux must be a positive integer, got {k_aux!r}")
    k = min(k_aux, int(dead.sum()))
    if k == 0:
        return torch.zeros_like(pre)
    masked = pre.masked_fill(~dead, float("-inf"))  # live features never win
    values, indices = masked.topk(k, dim=1)  # (B, k), all dead features
    return torch.zeros_like(pre).scatter(1, indices, F.relu(values))


class UnitColumns(nn.Module):
    """A parametrisation: the weight (n, F) seen through it has columns of unit norm."""

    def forward(self, weight: Tensor) -> Tensor:
        return weight / weight.norm(dim=0, keepdim=True).clamp_min(1e-12)


class SAE(nn.Module):
    """A sparse autoencoder of activation vectors (B, n): a linear encoder with a ReLU or
    top-t code of F features, and a linear decoder whose columns (the dictionary) have
    unit norm."""

    config_class = SAEConfig

    def __init__(self, config: SAEConfig) -> None:
        super().__init__()
        self.config = config
        n, f, t = config.input_dim, config.features, config.topk
        for name, value in (("input_dim", n), ("features", f)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= f):
            raise ValueError(f"topk must be None or an integer in [1, features={f}], got {t!r}")
        window = config.dead_after
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"dead_after must be None or a positive integer, got {window!r}")
        self.encoder = nn.Linear(n, f)  # W_enc (F, n), b_enc (F,)
        self.decoder = nn.Linear(f, n)  # W_dec (n, F): column j is atom d_j; b_dec (n,)
        with torch.no_grad():
            self.decoder.bias.zero_()
            self.encoder.bias.zero_()
        # every W_dec the model uses is the stored weight with its columns normalised: the
        # optimiser may move it anywhere, the dictionary stays on the unit sphere
        parametrize.register_parametrization(self.decoder, "weight", UnitColumns())
        with torch.no_grad():  # the encoder starts as the transpose of the decoder (Gao et al.)
            self.encoder.weight.copy_(self.dictionary.T)
        if window is not None:  # saved with the weights, so that a resumed run goes on counting
            self.register_buffer("inputs_since_fired", torch.zeros(f, dtype=torch.long))

    @property
    def dictionary(self) -> Tensor:
        """W_dec (n, F): the F atoms d_j as unit-norm columns."""
        return self.decoder.weight

    def _check(self, h: Tensor) -> None:
        n = self.config.input_dim
        if not isinstance(h, Tensor) or h.ndim != 2 or h.shape[1] != n or not h.is_floating_point():
            got = f"shape {tuple(h.shape)}, dtype {h.dtype}" if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"expected float activations of shape (B, {n}), got {got}")

    def pre_activations(self, h: Tensor) -> Tensor:
        """Activations h (B, n) -> W_enc (h - b_dec) + b_enc (B, F)."""
        self._check(h)
        return self.encoder(h - self.decoder.bias)

    def code(self, pre: Tensor) -> Tensor:
        """Pre-activations (B, F) -> sparse code z (B, F): a ReLU, or top-t."""
        if self.config.topk is None:
            return F.relu(pre)
        return top_k_code(pre, self.config.topk)

    def encode(self, h: Tensor) -> Tensor:
        """Activations h (B, n) -> sparse code z (B, F), non-negative."""
        return self.code(self.pre_activations(h))

    def dead_mask(self) -> Tensor:
        """(F,) bool: the features that have not fired on the last `dead_after`
        training inputs."""
        if self.config.dead_after is None:
            raise ValueError("this SAE keeps no count of dead features: "
                             "give it SAEConfig(dead_after=...)")
        return self.inputs_since_fired >= self.config.dead_after

    @torch.no_grad()
    def _count(self, z: Tensor) -> None:
        """Training mode: add the batch's inputs to every feature's count, and
        reset the count of those that fired on one of them."""
        self.inputs_since_fired += z.shape[0]
        self.inputs_since_fired[(z > 0).any(0)] = 0

    def decode(self, z: Tensor) -> Tensor:
        """Code z (B, F) -> activations h_hat = W_dec z + b_dec (B, n)."""
        f = self.config.features
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != f:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"expected codes of shape (B, {f}), got {got}")
        return self.decoder(z)

    def forward(self, h: Tensor) -> SAEOutput:
        pre = self.pre_activations(h)  # (B, F)
        z = self.code(pre)  # (B, F)
        if self.training and self.config.dead_after is not None:
            self._count(z)
        return SAEOutput(h_hat=self.decode(z), z=z, pre=pre)

    def reconstruct(self, h: Tensor) -> Tensor:
        """h_hat (B, n), the activations rebuilt from their sparse code."""
        return self(h).h_hat
