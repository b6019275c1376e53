"""Convolutional building blocks of the codec: residual dilated units, encoder, decoder.

Length bookkeeping: every non-strided conv is 'same'-padded; a stage with stride s
maps T frames to T/s (encoder) or T·s (decoder) exactly, so L samples ↔ L/hop tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualUnit(nn.Module):
    """x + conv1x1(ELU(dilated conv3(ELU(x)))): widens the receptive field cheaply."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ELU(),
            nn.Conv1d(channels, channels, kernel_size=3, dilation=dilation, padding=dilation),
            nn.ELU(),
            nn.Conv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Encoder(nn.Module):
    """(B, 1, L) → (B, D, L / hop)."""

    def __init__(
        self, width: int, code_dim: int, strides: tuple[int, ...], dilations: tuple[int, ...]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(1, width, kernel_size=7, padding=3)]
        for stride in strides:
            layers += [ResidualUnit(width, d) for d in dilations]
            layers += [
                nn.ELU(),
                nn.Conv1d(width, width, kernel_size=2 * stride, stride=stride, padding=stride // 2),
            ]
        layers += [nn.ELU(), nn.Conv1d(width, code_dim, kernel_size=3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, D, T) → (B, 1, T · hop); mirrors the encoder."""

    def __init__(
        self, width: int, code_dim: int, strides: tuple[int, ...], dilations: tuple[int, ...]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, kernel_size=3, padding=1)]
        for stride in reversed(strides):
            layers += [
                nn.ELU(),
                nn.ConvTranspose1d(
                    width, width, kernel_size=2 * stride, stride=stride, padding=stride // 2
                ),
            ]
            layers += [ResidualUnit(width, d) for d in dilations]
        layers += [nn.ELU(), nn.Conv1d(width, 1, kernel_size=7, padding=3)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
