"""Convolutional building blocks of the codec: residual dilated units, encoder, decoder.

Nothing runs at the full sample rate except one analysis filterbank (a strided conv,
kernel 4·s) at the encoder's input and one synthesis filterbank (a transposed conv,
overlap-add) at the decoder's output. On a 2-core CPU, full-rate convolutions with
one input or output channel and full-rate activations cost more than the whole rest
of the network (measured: ~1.4 s of ~2.4 s per 16 s of audio), so residual units
run only after the first downsampling.

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


def _down(in_channels: int, out_channels: int, stride: int, taps: int) -> nn.Conv1d:
    # kernel taps·s, stride s, padding (taps − 1)·s/2: exactly L/s output frames.
    return nn.Conv1d(
        in_channels, out_channels, taps * stride, stride=stride, padding=(taps - 1) * stride // 2
    )


def _up(in_channels: int, out_channels: int, stride: int, taps: int) -> nn.ConvTranspose1d:
    return nn.ConvTranspose1d(
        in_channels, out_channels, taps * stride, stride=stride, padding=(taps - 1) * stride // 2
    )


class Encoder(nn.Module):
    """(B, 1, L) → (B, D, L / hop)."""

    def __init__(
        self, width: int, code_dim: int, strides: tuple[int, ...], dilations: tuple[int, ...]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [_down(1, width, strides[0], taps=4)]  # analysis filterbank
        layers += [ResidualUnit(width, d) for d in dilations]
        for stride in strides[1:]:
            layers += [nn.ELU(), _down(width, width, stride, taps=2)]
            layers += [ResidualUnit(width, d) for d in dilations]
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
        for stride in reversed(strides[1:]):
            layers += [ResidualUnit(width, d) for d in dilations]
            layers += [nn.ELU(), _up(width, width, stride, taps=2)]
        layers += [ResidualUnit(width, d) for d in dilations]
        layers += [nn.ELU(), _up(width, 1, strides[0], taps=4)]  # synthesis (overlap-add)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
