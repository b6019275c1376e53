"""Beam search for the two-source methods.

Every hypothesis carries its own tokens, score and prior state; expansions are ranked by
score + log p1(a) + log p2(b) + w·log L(y | a, b) over all beams at once, and the survivors'
rows are gathered together — tokens, scores, prior states and origins all with the same
index, so a score never moves to another beam (the defect of the public LASS code). With
enough beams to keep every path, the best beam is the exact MAP.

Expansions: the top_k codes of each source per beam, or all K×K pairs when top_k is None
(in chunks of codes of source 1 so no (B, K, K) block exceeds ~4 M values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from latsep.models.prior.protocol import Prior
from latsep.models.separation.samplers import PairLikelihood

_CHUNK_VALUES = 1 << 22


@dataclass
class Beams:
    states: list[Any]  # per prior; after beam_search, not advanced by the last step
    tokens: torch.Tensor  # (B, 2, t) long
    scores: torch.Tensor  # (B,) float64
    origins: torch.Tensor  # (B,) long
    fallback_steps: torch.Tensor  # (B,) long


def _best_expansions(
    likelihood: PairLikelihood,
    log_priors: list[torch.Tensor],
    scores: torch.Tensor,
    y: int,
    weight: float,
    width: int,
    top_k: int | None,
    use_likelihood: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top `width` expansions over all beams: (scores, beam rows, a, b), each (width',)."""
    rows, k = log_priors[0].shape
    slc = likelihood.pair_slice(torch.full((rows,), y, dtype=torch.long), weight)
    if top_k is not None and top_k < k:
        supports_b = log_priors[1].topk(top_k, dim=1).indices  # (B, kb)
        chunks = [log_priors[0].topk(top_k, dim=1).indices]
    else:
        supports_b = torch.arange(k).expand(rows, k)
        step = max(1, _CHUNK_VALUES // (rows * k))
        chunks = [torch.arange(s, min(s + step, k)).expand(rows, -1) for s in range(0, k, step)]
    best_values = torch.empty(0, dtype=torch.float64)
    best_keys = torch.empty(0, 3, dtype=torch.long)  # (beam, a, b)
    kb = supports_b.shape[1]
    for supports_a in chunks:
        ka = supports_a.shape[1]
        total = (
            scores[:, None, None]
            + log_priors[0].gather(1, supports_a)[:, :, None]
            + log_priors[1].gather(1, supports_b)[:, None, :]
        )  # (B, ka, kb)
        if use_likelihood:
            total = total + slc.log_grid(supports_a, supports_b)
        values, flat = total.flatten().topk(min(width, total.numel()))
        beam = flat // (ka * kb)
        a = supports_a[beam, (flat // kb) % ka]
        b = supports_b[beam, flat % kb]
        best_values = torch.cat([best_values, values])
        best_keys = torch.cat([best_keys, torch.stack([beam, a, b], 1)])
        if best_values.numel() > width:
            best_values, keep = best_values.topk(width)
            best_keys = best_keys[keep]
    order = best_values.argsort(descending=True)
    best_values, best_keys = best_values[order], best_keys[order]
    finite = torch.isfinite(best_values)
    return best_values[finite], best_keys[finite, 0], best_keys[finite, 1], best_keys[finite, 2]


def beam_search(
    priors: Sequence[Prior],
    likelihood: PairLikelihood,
    mixture_tokens: torch.Tensor,
    beams: Beams,
    *,
    width: int,
    top_k: int | None,
    weight: float,
    progress: Callable[[int], None] | None = None,
) -> Beams:
    """Extend `beams` over every mixture token; returns at most `width` beams, best first.

    The returned states have *not* been advanced by the last step's tokens (the engine never
    reads them, and for a windowed prior that last advance could cost a wasted re-prime).
    """
    steps = mixture_tokens.shape[0]
    for t, y in enumerate(mixture_tokens.tolist()):
        log_priors = [
            p.log_probs(s).cpu().double() for p, s in zip(priors, beams.states, strict=True)
        ]
        values, rows, a, b = _best_expansions(
            likelihood, log_priors, beams.scores, y, weight, width, top_k, True
        )
        fell_back = values.numel() == 0
        if fell_back:  # every expansion impossible: this step ignores the likelihood
            values, rows, a, b = _best_expansions(
                likelihood, log_priors, beams.scores, y, weight, width, top_k, False
            )
        states = [p.select(s, rows) for p, s in zip(priors, beams.states, strict=True)]
        if t + 1 < steps:  # nothing reads the state after the last token: skip its advance
            states = [p.advance(s, z) for p, s, z in zip(priors, states, (a, b), strict=True)]
        beams = Beams(
            states=states,
            tokens=torch.cat([beams.tokens[rows], torch.stack([a, b], 1)[:, :, None]], 2),
            scores=values,
            origins=beams.origins[rows],
            fallback_steps=beams.fallback_steps[rows] + int(fell_back),
        )
        if progress is not None:
            progress(t + 1)
    return beams
