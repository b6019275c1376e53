"""Typed results of the separation engine."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Separation:
    """Candidates for one token sequence of a mixture.

    tokens: (C, N, T) LongTensor, candidate × source × step.
    log_scores: (C,) float64, Σ_t [Σ_i log p_i(z_i | history) + w·log L(y_t | z)] of each
        candidate's path, with the *untempered, unpruned* prior log-probs (see engine.py for
        the mlass-bp / mlass-pe forms and for fallback steps). Beam results are sorted best
        first; sampled candidates are in draw order.
    fallback_steps: (C,) long, steps where every tuple had zero likelihood and the step fell
        back to the priors alone (likelihood treated as uniform).
    origins: (C,) long, the prefix row each candidate extends (beam search may drop or
        duplicate rows of a per-candidate prefix; smc and mixed resample them); arange(C) for
        sampling. (C, N) where each source was resampled on its own (mlass-pe with smc or
        mixed): the prefix row each source of each candidate extends.
    hidden_tokens: (C, N - 2, T) long for mlass-bp sampling, else None: the sampled hidden
        partial-mixture tokens m_2..m_(N-1) along which the likelihood term was scored
        (-1 at fallback steps).

    Beam search returns *fewer* than num_candidates rows when fewer distinct paths exist
    (T = 0 gives exactly one empty row; T = 1 at most K² rows); rows are never padded.
    """

    tokens: torch.Tensor
    log_scores: torch.Tensor
    fallback_steps: torch.Tensor
    origins: torch.Tensor
    hidden_tokens: torch.Tensor | None = None
    # (C, N) with per-source origins: each source's share of log_scores (its prior terms and
    # its likelihood factor), which is what a next window continues source by source
    source_scores: torch.Tensor | None = None
