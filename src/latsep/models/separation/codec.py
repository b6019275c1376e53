"""The codec as the separation pipeline sees it (structural typing; any VQ-VAE fits)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Codec(Protocol):
    """encode (B, L) float audio -> (B, T) LongTensor; decode (B, T) -> (B, L') audio."""

    @property
    def hop_length(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    def encode(self, audio: torch.Tensor) -> torch.Tensor: ...

    def decode(self, tokens: torch.Tensor) -> torch.Tensor: ...
