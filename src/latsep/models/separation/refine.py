"""Gibbs sweeps over whole sources: redraw one source's tokens with the others held.

The first pass draws every source at once, step by step, with only the past to go on: at
step t it knows nothing of what the other sources will do later, so with three sources the
tuple the likelihood picks is often the wrong split of the mixture token. A sweep then
redraws source i's whole sequence, step by step from its own prior, given the mixture
*and* the other sources' current tokens:

    z_i,t ~ ∝ p_i(z | z_i,<t)^(1/τ)|top-k · L(y_t | z, z_-i,t)^w

which is the same per-step sampler as the first pass with every other source's weights a
point mass on its token (so its exactness tests cover this too). Knowing the others, the
likelihood leaves source i far fewer codes, and the next source is redrawn against the
improved one. Every candidate row is swept independently, so the rows stay samples.

For mlass-pe (L = Π_i p(y | z_i)) the other sources never enter source i's draw: a sweep
would only redraw the first pass, so it is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from latsep.models.prior.protocol import Prior
from latsep.models.separation.engine import prime_state
from latsep.models.separation.samplers import MarginalSampler, StepSampler
from latsep.models.separation.weights import SourceWeights, prior_weights


def point_mass(tokens: torch.Tensor, num_tokens: int) -> SourceWeights:
    """Weights that allow only `tokens` (C,): 1 there, 0 elsewhere."""
    values = torch.zeros(tokens.shape[0], num_tokens, dtype=torch.float64)
    values.scatter_(1, tokens[:, None], 1.0)
    return SourceWeights(values, tokens[:, None])


def gibbs_sweeps(
    sampler: StepSampler,
    priors: Sequence[Prior],
    mixture_tokens: torch.Tensor,
    tokens: torch.Tensor,
    *,
    sweeps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    prefix: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """`sweeps` passes over the sources in order; tokens (C, N, T) -> refined (C, N, T).

    prefix (C, N, P): each row's tokens before this window (its priors are primed with
    them, as in the first pass). progress(done) counts redrawn source-steps.
    """
    if isinstance(sampler, MarginalSampler):
        raise ValueError("mlass-pe's sources are independent given the mixture: nothing to sweep")
    if sweeps < 0:
        raise ValueError(f"sweeps must be >= 0; got {sweeps}")
    rows, n, steps = tokens.shape
    tokens = tokens.clone()
    done = 0
    for _ in range(sweeps):
        for i, prior in enumerate(priors):
            state = prior.initial_state(rows)
            if prefix is not None and prefix.shape[2]:
                state = prime_state(prior, state, prefix[:, i])
            for t, y in enumerate(mixture_tokens.tolist()):
                log_probs = prior.log_probs(state).cpu()
                weights = [
                    prior_weights(log_probs, temperature, top_k)
                    if j == i
                    else point_mass(tokens[:, j, t], prior.num_tokens)
                    for j in range(n)
                ]
                tokens[:, i, t] = sampler.sample(weights, y, generator).tokens[:, i]
                if t + 1 < steps:
                    state = prior.advance(state, tokens[:, i, t])
                done += 1
                if progress is not None:
                    progress(done)
    return tokens
