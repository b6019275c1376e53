"""separate(): one entry point for the five methods over one token sequence.

Scores (Separation.log_scores) are Σ_t [Σ_i log p_i(z_i | history) + w·log L(y_t | z)] with
the untempered, unpruned prior log-probs; temperature and top_k only shape what is drawn.
For mlass-bp, L is taken along the sampled hidden partial-mixture tokens; for mlass-pe it is
Π_i p(y | z_i). A fallback step (every tuple impossible) contributes only the priors' terms.

search="smc" is the same per-step draw with sequential Monte Carlo on top: each candidate
(particle) carries the product of its steps' evidence Σ_z Π_i p_i(z_i | history) L(y_t | z)^w
(the importance weight of a proposal that is exactly the per-step draw), and when the
weights' effective sample size falls below half the candidates they are resampled
(systematic resampling: rows duplicated in proportion to their weight, histories and prior
states with them, weights reset). Independent draws look at y_t only; resampling lets later
steps prune a history that explains them badly, so the candidates approach samples of the
whole-sequence posterior. The weights target that posterior only untempered and unpruned, so
smc needs temperature 1 and no top-k. Windows of long audio each start with equal weights.
search="mixed" resamples only the first half of the candidates (⌈C/2⌉ particles) and draws the
rest independently, as "sample" does: the particles are the better candidates, the independent
draws keep the spread a consensus of masks needs (docs/bench/ablation.md, session 9).

source_factors (T, N, K), optional: a known positive factor f_t,i(z) per step, source and
code, multiplied into the target, Π_i p_i(z_i | history) f_t,i(z_i) · L(y_t | z)^w, and into
the scores as Σ log f — what band-filtered views of the mixture say of each source's code
(`views.py`). Each source's step weights carry it, so every sampler draws it exactly and
smc's evidence includes it; beam search does not take it.

likelihood_weight w must be > 0 (w = 0 would make 0^0 and 0·log 0 ambiguous). For mlass-bp
with n >= 3 sources w must be 1: DESIGN asks for Π_i p_i · L^w with L = Σ_m Π_l p_l, and L^w
has no chain factorisation, so per-step belief propagation cannot sample it exactly (tempering
every level instead, Σ_m Π_l p_l^w, is a different distribution). With n = 2 any w is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from latsep.methods import TWO_SOURCE_METHODS, option_problem
from latsep.models.prior.protocol import Prior
from latsep.models.separation.beam import Beams, beam_search
from latsep.models.separation.registry import MODELS
from latsep.models.separation.result import Separation
from latsep.models.separation.samplers import StepSampler
from latsep.models.separation.weights import prior_weights

# search="smc" resamples when the effective sample size falls below this share of the rows
RESAMPLE_BELOW = 0.5
# search="mixed": the share of the candidates that are resampled particles (rounded up). Two
# particles never fall below the threshold (their ESS is at least 1), so with 3 or 4
# candidates mixed draws as "sample" does; the shipped defaults use 16.
MIXED_PARTICLES = 0.5

# method -> the likelihood classes it takes (the methods and their rules: latsep/methods.py)
LIKELIHOODS: dict[str, tuple[type, ...]] = {m: model.likelihoods for m, model in MODELS.items()}


def _validate(
    method: str,
    priors: Sequence[Prior],
    likelihood: object,
    mixture_tokens: torch.Tensor,
    search: str,
    num_candidates: int,
    temperature: float,
    top_k: int | None,
    likelihood_weight: float,
) -> None:
    expected = LIKELIHOODS.get(method)
    if expected is None:
        raise ValueError(option_problem(method))
    if not isinstance(likelihood, expected):
        names = " or ".join(cls.__name__ for cls in expected)
        raise ValueError(f"method {method!r} needs a {names}, got {type(likelihood).__name__}")
    n_sources = 2 if method in TWO_SOURCE_METHODS else likelihood.num_sources  # type: ignore[attr-defined]
    if len(priors) != n_sources or n_sources < 2:
        raise ValueError(
            f"method {method!r} with this likelihood separates {n_sources} sources; "
            f"got {len(priors)} priors"
        )
    # Beam only for pairs and untempered; the weight > 0, and 1 for mlass-bp's chain with
    # n >= 3 (L^w has no chain factorisation: see the module docstring).
    problem = option_problem(
        method,
        n_sources,
        search=search,
        temperature=temperature,
        likelihood_weight=likelihood_weight,
        top_k=top_k,
    )
    if problem is not None:
        raise ValueError(problem)
    k = likelihood.num_tokens  # type: ignore[attr-defined]
    for i, prior in enumerate(priors):
        if prior.num_tokens != k:
            raise ValueError(f"prior {i} predicts {prior.num_tokens} codes; likelihood has {k}")
    if mixture_tokens.dim() != 1 or mixture_tokens.dtype != torch.long:
        raise ValueError("mixture_tokens must be a 1-D LongTensor (T,)")
    # A likelihood bound to one mixture's latents observes step indices, not codes.
    limit = getattr(likelihood, "num_observations", k)
    if mixture_tokens.numel() and (mixture_tokens.min() < 0 or mixture_tokens.max() >= limit):
        raise ValueError(f"mixture tokens must lie in [0, {limit})")
    if num_candidates < 1:
        raise ValueError("num_candidates must be >= 1")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None; got {top_k}")


def step_sampler(method: str, likelihood: object, weight: float) -> StepSampler:
    """The per-step exact sampler of `method` (also what Gibbs sweeps redraw with)."""
    return MODELS[method].sampler(likelihood, weight)


def _primed_states(
    priors: Sequence[Prior], prefix: torch.Tensor | None, rows: int
) -> tuple[list[object], int]:
    """Prior states after the prefix (rows, N, P); returns (states, rows).

    A prior may offer an optional `prime(state, tokens (B, P))` that appends a whole prefix
    at once (our transformer does it in one forward pass); otherwise we advance token by token.
    """
    states = [p.initial_state(rows) for p in priors]
    if prefix is None or prefix.shape[2] == 0:
        return states, rows
    return [
        prime_state(p, s, prefix[:, i]) for i, (p, s) in enumerate(zip(priors, states, strict=True))
    ], rows


def prime_state(prior: Prior, state: object, tokens: torch.Tensor) -> object:
    """`state` after the tokens (B, P): the prior's own `prime` when it has one, else one
    `advance` per token."""
    prime = getattr(prior, "prime", None)
    if callable(prime):
        return prime(state, tokens)
    for t in range(tokens.shape[1]):
        state = prior.advance(state, tokens[:, t])
    return state


def separate(
    method: str,
    priors: Sequence[Prior],
    likelihood: object,
    mixture_tokens: torch.Tensor,
    *,
    search: str = "sample",
    num_candidates: int = 16,
    temperature: float = 1.0,
    top_k: int | None = None,
    likelihood_weight: float = 1.0,
    generator: torch.Generator | None = None,
    prefix: torch.Tensor | None = None,
    prefix_scores: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
    source_factors: torch.Tensor | None = None,
) -> Separation:
    """Separate one token sequence (T,) into `num_candidates` candidates of N sources.

    search="sample": every step draws the tuple exactly from ∝ Π_i p_i^(1/τ)|top-k · L^w.
    search="beam" (two-source methods): `num_candidates` beams, best first.
    search="smc": sampling with resampling of the candidates (module docstring); "mixed":
    the first ⌈C/2⌉ candidates resampled, the others independent draws.
    prefix: (N, P) or (C, N, P) tokens already chosen for each source (the previous window of
    long audio); priors are primed with it. prefix_scores (C,): scores carried by those rows
    (beam search ranks with them), or (C, N) per source (a previous result's source_scores).
    `progress` is called with the number of steps done. source_factors (T, N, K) > 0: unary
    factors on each source's code (module docstring).
    Beam search returns fewer than `num_candidates` rows when fewer distinct paths exist
    (e.g. T = 0 gives one row, T = 1 at most K² rows); it never pads.
    """
    _validate(
        method,
        priors,
        likelihood,
        mixture_tokens,
        search,
        num_candidates,
        temperature,
        top_k,
        likelihood_weight,
    )
    n = len(priors)
    if prefix is not None:
        prefix = prefix.to(torch.long)
        if prefix.dim() == 2:
            prefix = prefix[None].expand(1 if search == "beam" else num_candidates, -1, -1)
        if prefix.dim() != 3 or prefix.shape[1] != n:
            raise ValueError("prefix must be (N, P) or (C, N, P)")
        if search != "beam" and prefix.shape[0] != num_candidates:
            raise ValueError("a per-candidate prefix needs one row per candidate")
    if prefix_scores is not None:
        rows = (1 if prefix is None else prefix.shape[0]) if search == "beam" else num_candidates
        if tuple(prefix_scores.shape) not in ((rows,), (rows, n)):
            raise ValueError(
                f"prefix_scores must be ({rows},), one per prefix row, or ({rows}, {n}); "
                f"got {tuple(prefix_scores.shape)}"
            )
    _check_source_factors(source_factors, search, mixture_tokens.shape[0], n, priors)
    with torch.inference_mode():
        if search == "beam":
            return _separate_beam(
                priors,
                likelihood,
                mixture_tokens,
                num_candidates,
                top_k,
                likelihood_weight,
                prefix,
                prefix_scores,
                progress,
            )
        return _separate_sample(
            step_sampler(method, likelihood, likelihood_weight),
            priors,
            mixture_tokens,
            num_candidates,
            temperature,
            top_k,
            generator,
            prefix,
            prefix_scores,
            progress,
            particles=particle_rows(search, num_candidates),
            source_factors=None if source_factors is None else source_factors.to(torch.float64),
        )


def _check_source_factors(
    factors: torch.Tensor | None, search: str, steps: int, n: int, priors: Sequence[Prior]
) -> None:
    if factors is None:
        return
    if search == "beam":
        raise ValueError("source_factors need a sampling search; beam search does not take them")
    shape = (steps, n, priors[0].num_tokens)
    if tuple(factors.shape) != shape:
        raise ValueError(f"source_factors must be (T, N, K) = {shape}; got {tuple(factors.shape)}")
    # a zero could leave a source without a possible code (and its score at -inf)
    if not (torch.isfinite(factors).all() and (factors > 0).all()):
        raise ValueError("source_factors must be finite and > 0")


def particle_rows(search: str, rows: int) -> int:
    """How many of `rows` candidates `search` resamples: all for smc, ⌈MIXED_PARTICLES·rows⌉
    for mixed (the first ones), none otherwise."""
    if search == "smc":
        return rows
    if search == "mixed":
        return math.ceil(MIXED_PARTICLES * rows)
    return 0


def _separate_sample(
    sampler: StepSampler,
    priors: Sequence[Prior],
    mixture_tokens: torch.Tensor,
    rows: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
    prefix: torch.Tensor | None,
    prefix_scores: torch.Tensor | None,
    progress: Callable[[int], None] | None,
    particles: int = 0,
    source_factors: torch.Tensor | None = None,
) -> Separation:
    n, steps = len(priors), mixture_tokens.shape[0]
    states, rows = _primed_states(priors, prefix, rows)
    # Groups of sources that are resampled together: all of them, or each on its own where
    # the sampler's sources are independent given y (mlass-pe). Scores, fallbacks, origins
    # and weights are kept per group; without resampling there is one group. Only the first
    # `particles` rows are resampled (among themselves); the rest stay independent draws.
    by_source = particles > 0 and sampler.independent_sources
    members = [[i] for i in range(n)] if by_source else [list(range(n))]
    groups = len(members)
    tokens = torch.zeros(rows, n, steps, dtype=torch.long)
    scores = torch.zeros(rows, groups, dtype=torch.float64)
    if prefix_scores is not None:  # a per-row score without a split rides with group 0
        carried = prefix_scores.to(torch.float64).reshape(rows, -1)
        scores[:, : carried.shape[1]] += carried
    fallback = torch.zeros(rows, groups, dtype=torch.long)
    origins = torch.arange(rows)[:, None].repeat(1, groups)
    log_weights = torch.zeros(particles, groups, dtype=torch.float64)  # the particles' weights
    hidden: torch.Tensor | None = None  # (C, N - 2, T) partial mixtures, mlass-bp only
    for t, y in enumerate(mixture_tokens.tolist()):
        # N × (C, K); the tables live on the CPU, so do the step there (C·K values).
        log_priors = [p.log_probs(s).cpu() for p, s in zip(priors, states, strict=True)]
        weights = [prior_weights(lp, temperature, top_k) for lp in log_priors]
        if source_factors is not None:
            weights = [w.times(source_factors[t, i]) for i, w in enumerate(weights)]
        draw = sampler.sample(weights, y, generator)
        prior_terms = torch.stack(
            [lp.gather(1, draw.tokens[:, i : i + 1]).squeeze(1) for i, lp in enumerate(log_priors)],
            1,
        ).to(torch.float64)  # (C, N)
        if source_factors is not None:  # the unary terms ride with each source's prior term
            drawn = source_factors[t].log().gather(1, draw.tokens.T)
            prior_terms = prior_terms + drawn.T
        if by_source:
            scores += prior_terms + draw.source_log_likelihood
            fallback += draw.source_fallback
        else:
            scores[:, 0] += prior_terms.sum(1) + draw.log_likelihood
            fallback[:, 0] += draw.fallback
        tokens[:, :, t] = draw.tokens
        if draw.hidden is not None:
            if hidden is None:
                hidden = torch.zeros(rows, draw.hidden.shape[1], steps, dtype=torch.long)
            hidden[:, :, t] = draw.hidden
        if t + 1 < steps:  # nothing reads the state after the last token: skip its advance
            states = [
                p.advance(s, draw.tokens[:, i])
                for i, (p, s) in enumerate(zip(priors, states, strict=True))
            ]
        if particles:
            evidence = _group_evidence(draw.log_evidence)[:particles]
            log_weights = add_evidence(log_weights, evidence)
            for group, sources in enumerate(members):
                chosen = resampled_rows(log_weights[:, group], generator, RESAMPLE_BELOW)
                if chosen is None:
                    continue
                kept = torch.cat([chosen, torch.arange(particles, rows)])
                tokens[:, sources, : t + 1] = tokens[kept, :, : t + 1][:, sources]
                if hidden is not None:  # one group: the hidden tokens go with the row
                    hidden[:, :, : t + 1] = hidden[kept, :, : t + 1]
                scores[:, group] = scores[kept, group]
                fallback[:, group] = fallback[kept, group]
                origins[:, group] = origins[kept, group]
                log_weights[:, group] = 0.0
                if t + 1 < steps:
                    for i in sources:
                        states[i] = priors[i].select(states[i], kept)
        if progress is not None:
            progress(t + 1)
    if by_source:
        # fallback_steps: the most steps any one source of the candidate fell back on
        return Separation(tokens, scores.sum(1), fallback.max(1).values, origins, None, scores)
    return Separation(tokens, scores[:, 0], fallback[:, 0], origins[:, 0], hidden)


def _group_evidence(evidence: torch.Tensor | None) -> torch.Tensor:
    """A step's evidence as (C, groups): the row's (C,) as one group, or per source (C, N)
    from a sampler with independent sources, which are then resampled source by source."""
    if evidence is None:
        raise ValueError("this sampler reports no step evidence: search=smc or mixed cannot use it")
    return evidence[:, None] if evidence.dim() == 1 else evidence


def add_evidence(log_weights: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """The particles' log weights (C, G) after one more step's evidence (C, G). A row that fell
    back (evidence -inf) gets weight 0 unless every row of its group did: then the step is
    uninformative for that group (the fallback rule: likelihood uniform for that step)."""
    informative = torch.isfinite(evidence).any(0, keepdim=True)  # (1, G)
    return torch.where(informative, log_weights + evidence, log_weights)


def resampled_rows(
    log_weights: torch.Tensor, generator: torch.Generator | None, threshold: float
) -> torch.Tensor | None:
    """Systematic resampling when the effective sample size 1 / Σ w² of the normalised
    weights is below `threshold` × C: the rows to keep (C,), each row j appearing
    ⌊C·w_j⌋ or ⌈C·w_j⌉ times, in row order; None when the weights are still even enough."""
    rows = log_weights.shape[0]
    weights = torch.softmax(log_weights, 0)
    if float(1.0 / (weights**2).sum()) >= threshold * rows:
        return None
    offset = torch.rand(1, generator=generator, dtype=torch.float64)
    points = (offset + torch.arange(rows, dtype=torch.float64)) / rows
    cdf = weights.cumsum(0)
    cdf = cdf / cdf[-1]  # exactly 1 at the end: every point (< 1) lands on a weighted row
    return torch.searchsorted(cdf, points, right=True).clamp(max=rows - 1)


def _separate_beam(
    priors: Sequence[Prior],
    likelihood: object,
    mixture_tokens: torch.Tensor,
    width: int,
    top_k: int | None,
    weight: float,
    prefix: torch.Tensor | None,
    prefix_scores: torch.Tensor | None,
    progress: Callable[[int], None] | None,
) -> Separation:
    rows = 1 if prefix is None else prefix.shape[0]
    states, rows = _primed_states(priors, prefix, rows)
    scores = torch.zeros(rows, dtype=torch.float64)
    if prefix_scores is not None:
        scores += prefix_scores.to(torch.float64)
    beams = Beams(
        states=states,
        tokens=torch.zeros(rows, 2, 0, dtype=torch.long),
        scores=scores,
        origins=torch.arange(rows),
        fallback_steps=torch.zeros(rows, dtype=torch.long),
    )
    beams = beam_search(
        priors,
        likelihood,  # type: ignore[arg-type]
        mixture_tokens,
        beams,
        width=width,
        top_k=top_k,
        weight=weight,
        progress=progress,
    )
    return Separation(beams.tokens, beams.scores, beams.fallback_steps, beams.origins)
