"""After the token search: the candidates decoded a block of time at a time.

The candidates' tokens (C, N, T) never become whole-length audio. The models' STFT frames
are cut into blocks; each block decodes every candidate over the samples its frames see
(with the decoder's context: exact, see `decode_span`), and that audio feeds the
candidates' scores over the samples the block owns (the blocks partition the signal) and
the power behind the masks of its frames. What is held at a time is one block of every
candidate plus running sums; the masks go on to `MaskApplier`s in time order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latsep.models.separation.chunks import decode_distinct, decoder_context
from latsep.models.separation.codec import Codec
from latsep.models.separation.consistency import SiSdrSums
from latsep.models.separation.masks import StftGrid

_EPS = 1e-12
# The models' STFT frames decoded at a time (≈12 s at hop 256): the decoder's context is
# decoded again at each block's edges (≈6 % more decoding at this size).
BLOCK_FRAMES = 1024


@dataclass(frozen=True)
class Block:
    """The models' STFT frames [first, stop), the samples [lo, hi) they see (zeros beyond
    the signal) and the samples [own_lo, own_hi) the block scores."""

    first: int
    stop: int
    lo: int
    hi: int
    own_lo: int
    own_hi: int


def plan_blocks(stft: StftGrid, block_frames: int) -> list[Block]:
    """Blocks of `block_frames` frames over the grid; their own samples partition
    [0, length): frame t owns [t · hop, (t + 1) · hop)."""
    step = max(1, block_frames)
    blocks = []
    for first in range(0, stft.frames, step):
        stop = min(stft.frames, first + step)
        lo, hi = stft.span(first, stop)
        own = (first * stft.hop_length, min(stft.length, stop * stft.hop_length))
        blocks.append(Block(first, stop, lo, hi, *own))
    return blocks


def block_frames_for(codec: Codec, stft: StftGrid, block_frames: int) -> int:
    """`block_frames`, or the whole grid for a codec that can only decode whole rows (each
    block would decode everything again)."""
    return block_frames if decoder_context(codec) is not None else stft.frames


def decode_block(
    codec: Codec, tokens: torch.Tensor, gain: float, block: Block, length: int, bf16: bool
) -> np.ndarray:
    """(C, N, T) tokens -> (C, N, hi − lo) float32: the candidates' sources over the block's
    samples at the mixture's level (decoded / gain); what candidates share is decoded once
    (`decode_distinct`)."""
    c, n, t = tokens.shape
    audio = decode_distinct(codec, tokens.reshape(c * n, t), block.lo, block.hi, length, bf16)
    audio /= np.float32(gain)
    return audio.reshape(c, n, -1)


class CandidateScores:
    """Every candidate's mixture consistency ‖y − Σ_i x̂_i‖² / ‖y‖² (lower is better) and,
    given references (N, L), its mean SI-SDR over the sources (the oracle's ranking), from
    running float64 sums over blocks."""

    def __init__(
        self, mixture: np.ndarray, num_candidates: int, references: np.ndarray | None = None
    ) -> None:
        self.mixture = mixture  # (L,)
        self.errors = np.zeros(num_candidates, dtype=np.float64)
        self.energy = 0.0
        self.si_sdr = SiSdrSums(references, num_candidates) if references is not None else None

    def add(self, block: Block, audio: np.ndarray) -> None:
        """audio (C, N, hi − lo): every candidate over the block's samples."""
        own = slice(block.own_lo - block.lo, block.own_hi - block.lo)
        mixture = np.asarray(self.mixture[block.own_lo : block.own_hi], dtype=np.float64)
        self.energy += float((mixture**2).sum())
        for c, candidate in enumerate(audio[:, :, own]):  # (N, S)
            residual = mixture - candidate.sum(0, dtype=np.float64)
            self.errors[c] += float((residual**2).sum())
            if self.si_sdr is not None:
                self.si_sdr.add(c, block.own_lo, candidate)

    def consistency(self) -> np.ndarray:
        """(C,) ‖y − Σ_i x̂_i‖² / ‖y‖²."""
        return self.errors / (self.energy + _EPS)

    def chosen(self) -> int:
        """The most consistent candidate (the first of equals)."""
        return int(np.argmin(self.consistency()))

    def oracle(self) -> np.ndarray | None:
        """(C,) mean SI-SDR over the sources, or None without references."""
        return None if self.si_sdr is None else self.si_sdr.values().mean(-1)
