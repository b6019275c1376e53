"""The codec: encoder → EMA vector quantiser → decoder, at 22,050 Hz mono."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latsep.models.codec.config import CodecConfig
from latsep.models.codec.layers import Decoder, Encoder
from latsep.models.codec.quantizer import EMAQuantizer


@dataclass(frozen=True)
class CodecOutput:
    """One training forward pass over audio (B, L) with L a multiple of the hop."""

    reconstruction: torch.Tensor  # (B, L)
    codes: torch.Tensor  # (B, T)
    latent: torch.Tensor  # (B, D, T), encoder output before quantisation
    quantized: torch.Tensor  # (B, D, T), straight-through codewords
    commitment_loss: torch.Tensor  # scalar


class Codec(nn.Module):
    """1-D convolutional VQ-VAE. L samples ↔ T = ceil(L / hop) tokens in [0, K)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.width, config.code_dim, config.strides, config.dilations)
        self.decoder = Decoder(config.width, config.code_dim, config.strides, config.dilations)
        self.quantizer = EMAQuantizer(
            config.num_tokens, config.code_dim, config.ema_decay, config.dead_code_threshold
        )

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def receptive_tokens(self) -> int:
        """Context (tokens, each side) that makes a chunked decode equal the whole one."""
        return self.config.decoder_context_tokens

    @property
    def encoder_receptive_tokens(self) -> int:
        """Context (tokens, each side) that makes a chunked encode equal the whole one."""
        return self.config.encoder_context_tokens

    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def codebook(self) -> torch.Tensor:
        """The codewords, (K, D)."""
        return self.quantizer.embedding

    @property
    def device(self) -> torch.device:
        return self.quantizer.embedding.device

    def pad(self, audio: torch.Tensor) -> torch.Tensor:
        """Right-pad (B, L) with zeros to a multiple of the hop."""
        remainder = audio.shape[-1] % self.hop_length
        if remainder:
            audio = F.pad(audio, (0, self.hop_length - remainder))
        return audio

    def embed(self, audio: torch.Tensor, *, bf16: bool = False) -> torch.Tensor:
        """Continuous latents of audio (B, L) → (B, D, T), fp32."""
        with _autocast(bf16, audio.device):
            latent = self.encoder(self.config.input_gain * self.pad(audio)[:, None, :])
        return latent.float()

    def encode(self, audio: torch.Tensor, *, bf16: bool = False) -> torch.Tensor:
        """Tokens of audio (B, L) → LongTensor (B, ceil(L / hop)); L is zero-padded.
        bf16 autocasts the encoder only; the nearest-code search stays fp32."""
        return self.quantize(self.embed(audio, bf16=bf16))

    def quantize(self, latents: torch.Tensor) -> torch.Tensor:
        """Codes of continuous latents (B, D, T) → (B, T), fp32: `encode` is quantize ∘ embed."""
        return self.quantizer.quantize_codes(latents)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Audio of tokens (B, T) → (B, T · hop)."""
        return self.decode_latent(self.quantizer.lookup(tokens))

    def decode_latent(self, quantized: torch.Tensor, *, bf16: bool = False) -> torch.Tensor:
        """Audio of codewords (B, D, T) → (B, T · hop), fp32."""
        with _autocast(bf16, quantized.device):
            audio = self.decoder(quantized)
        return audio.float()[:, 0, :] / self.config.input_gain

    def forward(self, audio: torch.Tensor, *, bf16: bool = False) -> CodecOutput:
        """Encode, quantise (updating the EMA codebook in training mode) and decode."""
        length = audio.shape[-1]
        latent = self.embed(audio, bf16=bf16)
        q = self.quantizer(latent)
        reconstruction = self.decode_latent(q.quantized, bf16=bf16)[:, :length]
        return CodecOutput(
            reconstruction=reconstruction,
            codes=q.codes,
            latent=latent,
            quantized=q.quantized,
            commitment_loss=q.commitment_loss,
        )


@contextlib.contextmanager
def _autocast(enabled: bool, device: torch.device) -> Iterator[None]:
    # bf16 autocast roughly halves conv time on CPUs with AVX512-BF16 (CALIBRATION.md);
    # the quantiser always runs in fp32 outside this context.
    if enabled:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
