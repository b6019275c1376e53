"""Vector quantiser with an EMA codebook and dead-code restart (VQ-VAE-2 / Jukebox style).

The codebook is not learned by gradient: each training step moves every code towards
the mean of the latents assigned to it (exponential moving averages of counts and
sums). A code whose EMA usage falls below `dead_code_threshold` is restarted on a
random latent of the current batch, so the whole codebook stays in use. All codebook
state lives in registered buffers, so checkpoints and bundles carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Quantized:
    """Result of quantising latents z (B, D, T)."""

    quantized: torch.Tensor  # (B, D, T), straight-through: gradients flow to z
    codes: torch.Tensor  # (B, T) long, in [0, K)
    commitment_loss: torch.Tensor  # scalar, ‖z − sg(q(z))‖² averaged


class EMAQuantizer(nn.Module):
    def __init__(
        self, num_tokens: int, code_dim: int, decay: float = 0.99, dead_code_threshold: float = 1.0
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.code_dim = code_dim
        self.decay = decay
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embedding", torch.randn(num_tokens, code_dim) * 0.1)  # (K, D)
        self.register_buffer("cluster_size", torch.ones(num_tokens))  # (K,) EMA of usage
        self.register_buffer("embedding_sum", self.embedding.clone())  # (K, D) EMA of sums
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of `flat` (M, D) → (M,).

        Always fp32, even inside a caller's bf16 autocast: bf16 distances would flip the
        argmin between close codes far more often than bf16 latents do."""
        with torch.autocast(flat.device.type, enabled=False):
            flat, codebook = flat.float(), self.embedding.float()
            distances = (
                flat.pow(2).sum(1, keepdim=True)
                - 2.0 * flat @ codebook.t()
                + codebook.pow(2).sum(1)[None, :]
            )  # (M, K)
            return distances.argmin(dim=1)

    def quantize_codes(self, z: torch.Tensor) -> torch.Tensor:
        """Codes of latents (B, D, T) → (B, T)."""
        b, d, t = z.shape
        flat = z.float().permute(0, 2, 1).reshape(b * t, d)  # (B·T, D)
        return self.nearest(flat).view(b, t)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords of codes (B, T) → (B, D, T)."""
        return F.embedding(codes, self.embedding).permute(0, 2, 1)

    def forward(self, z: torch.Tensor) -> Quantized:
        z = z.float()
        b, d, t = z.shape
        flat = z.permute(0, 2, 1).reshape(b * t, d)  # (B·T, D)
        if self.training:
            self._maybe_initialize(flat)
        codes = self.nearest(flat)
        if self.training:
            self._ema_update(flat, codes)
        quantized = F.embedding(codes, self.embedding).view(b, t, d).permute(0, 2, 1)
        commitment = F.mse_loss(z, quantized.detach())
        quantized = z + (quantized - z).detach()
        return Quantized(quantized=quantized, codes=codes.view(b, t), commitment_loss=commitment)

    @torch.no_grad()
    def _maybe_initialize(self, flat: torch.Tensor) -> None:
        # Start the codebook on real latents, so no code begins far from the data.
        if bool(self.initialized):
            return
        picks = _random_rows(flat, self.num_tokens)
        self.embedding.copy_(picks)
        self.embedding_sum.copy_(picks)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        one_hot_counts = torch.bincount(codes, minlength=self.num_tokens).to(flat.dtype)  # (K,)
        sums = torch.zeros_like(self.embedding_sum).index_add_(0, codes, flat)  # (K, D)
        self.cluster_size.mul_(self.decay).add_(one_hot_counts, alpha=1 - self.decay)
        self.embedding_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps the division finite for rarely used codes.
        n = self.cluster_size.sum()
        eps = 1e-5
        smoothed = (self.cluster_size + eps) / (n + self.num_tokens * eps) * n
        self.embedding.copy_(self.embedding_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_code_threshold
        num_dead = int(dead.sum())
        if num_dead:
            picks = _random_rows(flat, num_dead)
            self.embedding[dead] = picks
            self.embedding_sum[dead] = picks * self.dead_code_threshold
            self.cluster_size[dead] = self.dead_code_threshold


def _random_rows(flat: torch.Tensor, count: int) -> torch.Tensor:
    """`count` rows of `flat` (M, D), with replacement only when M < count; tiny jitter."""
    m = flat.shape[0]
    if m >= count:
        idx = torch.randperm(m, device=flat.device)[:count]
    else:
        idx = torch.randint(0, m, (count,), device=flat.device)
    rows = flat[idx]
    return rows + 1e-4 * rows.std().clamp_min(1e-3) * torch.randn_like(rows)
