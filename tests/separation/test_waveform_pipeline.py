"""Long audio: windows, ranking, oracle, and Wiener stems that sum to the mixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sep_bruteforce import markov_log_prob

from latsep.models.likelihood import ChainLikelihood, CountLikelihood
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import (
    engine,
    mixture_error,
    prior_context,
    separate_waveform,
    si_sdr,
    wiener_stems,
)


@pytest.mark.parametrize("length", [50, 3000, 22050])
def test_wiener_stems_sum_to_the_mixture(length):
    rng = np.random.default_rng(0)
    estimates = rng.standard_normal((3, length))
    mixture = estimates.sum(0) + 0.3 * rng.standard_normal(length)  # inconsistent estimates
    stems = wiener_stems(mixture, estimates)
    assert stems.shape == (3, length) and stems.dtype == np.float32
    np.testing.assert_allclose(stems.sum(0), mixture, atol=1e-5)


def test_wiener_with_silent_estimates_splits_evenly():
    mixture = np.sin(np.linspace(0, 200, 4000))
    stems = wiener_stems(mixture, np.zeros((2, 4000)))
    np.testing.assert_allclose(stems, np.stack([mixture / 2] * 2), atol=1e-5)


def test_wiener_keeps_well_separated_sources():
    t = np.arange(22050) / 22050
    low, high = np.sin(2 * np.pi * 110 * t), 0.5 * np.sin(2 * np.pi * 3000 * t)
    stems = wiener_stems(low + high, np.stack([0.8 * low, 1.2 * high]))
    assert si_sdr(low, stems[0]) > 25 and si_sdr(high, stems[1]) > 25


def test_ensemble_stems_sum_to_the_mixture_whatever_the_candidates_order():
    """(C, N, L) estimates: the masks' formula is checked in test_masks.py; here what any
    consensus must keep."""
    rng = np.random.default_rng(1)
    candidates = rng.standard_normal((3, 2, 4096))
    mixture = candidates.mean(0).sum(0) + 0.1 * rng.standard_normal(4096)
    stems = wiener_stems(mixture, candidates)
    np.testing.assert_allclose(stems.sum(0), mixture, atol=1e-5)
    # One candidate, or the same candidate repeated: plain Wiener; order does not matter.
    np.testing.assert_allclose(
        wiener_stems(mixture, candidates[:1]), wiener_stems(mixture, candidates[0])
    )
    np.testing.assert_allclose(
        wiener_stems(mixture, np.stack([candidates[0]] * 3)),
        wiener_stems(mixture, candidates[0]),
        atol=1e-6,
    )
    np.testing.assert_allclose(wiener_stems(mixture, candidates[::-1]), stems, atol=1e-6)


class LatticeCodec:
    """A toy codec with hop 1 and codeword k = the value k (K codes): exact on integers."""

    hop_length = 1
    sample_rate = 22050

    def __init__(self, k: int) -> None:
        self.k = k
        self.codebook = torch.arange(k, dtype=torch.float32)[:, None]

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return audio.round().clamp(0, self.k - 1).long()

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.float()


class ContextMarkov(MarkovPrior):
    context = 12  # tokens: forces several windows with a prefix


def lattice_problem(n: int, k: int, length: int, seed: int):
    """Sources on even codes from random chains over the even codes (never a dead end)."""
    g = torch.Generator().manual_seed(seed)
    even = torch.arange(0, k, 2)
    transition = torch.zeros(k, k)
    transition[:, even] = torch.rand(k, len(even), generator=g) + 0.1
    initial = torch.zeros(k)
    initial[even] = torch.rand(len(even), generator=g) + 0.1
    priors = [ContextMarkov(initial, transition) for _ in range(n)]
    sources = even[torch.randint(0, len(even), (n, length), generator=g)].numpy().astype(float)
    return priors, sources


def mean_code_counts(k: int) -> torch.Tensor:
    """Counts of the lattice's pairs of even codes: y = the code of their mean, exactly."""
    counts = torch.zeros(k, k, k)
    for a in range(0, k, 2):
        for b in range(0, k, 2):
            counts[a, b, (a + b) // 2] = 1.0
    return counts


def chain_scores(priors, likelihood, mixture_tokens, tokens):
    """Σ_t [Σ_i log p_i(z_t | z_(t-1)) + log L(y_t | z_t)] of whole paths (C, 2, T)."""
    c, _, steps = tokens.shape
    score = sum(markov_log_prob(prior, tokens[:, i]) for i, prior in enumerate(priors))
    for t in range(steps):
        y = mixture_tokens[t].expand(c)
        score += likelihood.log_prob(tokens[:, 0, t], tokens[:, 1, t], y)
    return score


def test_toy_end_to_end_reproduces_the_mixture_exactly():
    k = 16
    priors, sources = lattice_problem(2, k, length=40, seed=0)
    counts = mean_code_counts(k)
    mixture = sources.sum(0)
    progress = []
    result = separate_waveform(
        "lass",
        LatticeCodec(k),
        priors,
        CountLikelihood(counts, 0.0),
        mixture,
        num_candidates=6,
        references=sources,
        progress=progress.append,
        seed=3,
    )
    assert result.tokens.shape == (6, 2, 40)
    # Every candidate's tokens reproduce the mixture: Σ decoded sources = y exactly.
    np.testing.assert_allclose(result.candidate_consistency, 0.0, atol=1e-12)
    np.testing.assert_allclose(result.raw_stems.sum(0), mixture, atol=1e-5)
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-4)
    # The oracle against SI-SDR computed here from its definition, on the decoded candidates
    # (the lattice codec decodes token k to the value k, hop 1): for each source,
    # ŝ, s zero-mean; α = <ŝ, s> / ‖s‖²; SI-SDR = 10 log10(‖α s‖² / ‖ŝ − α s‖²) (a 1e-12
    # guard in both norms, as the metric documents, keeps an exact estimate finite).
    decoded = result.tokens.double().numpy()  # (C, N, L)
    expected = np.zeros(decoded.shape[0])
    for c in range(decoded.shape[0]):
        values = []
        for i in range(2):
            reference = sources[i] - sources[i].mean()
            estimate = decoded[c, i] - decoded[c, i].mean()
            alpha = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12)
            target, noise = alpha * reference, estimate - alpha * reference
            ratio = (np.dot(target, target) + 1e-12) / (np.dot(noise, noise) + 1e-12)
            values.append(10 * np.log10(ratio))
        expected[c] = np.mean(values)
    np.testing.assert_allclose(result.oracle_si_sdr, expected, rtol=1e-9, atol=1e-9)
    assert result.oracle_index == int(np.argmax(expected))
    assert np.ptp(expected) > 0  # candidates differ, so the argmax is a real choice
    assert progress[-1] == 1.0 and all(np.diff(progress) >= 0)
    assert int(result.fallback_steps.sum()) == 0


@pytest.mark.parametrize("search", ["sample", "beam", "smc", "mixed"])
def test_windows_continue_each_candidate(search, monkeypatch):
    """Windows of 9 tokens with a 3-token prefix: every candidate continues its own history
    (smc and mixed resample at every step, so rows move between windows' seams)."""
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    k = 16
    priors, sources = lattice_problem(2, k, length=30, seed=1)
    counts = mean_code_counts(k)
    likelihood = CountLikelihood(counts, 0.0)
    result = separate_waveform(
        "lass",
        LatticeCodec(k),
        priors,
        likelihood,
        sources.sum(0),
        num_candidates=4,
        search=search,
        window_tokens=9,
        prefix_tokens=3,
        consistency="none",
    )
    # Each candidate's score is its whole path's score: a history lost at a seam would
    # have scored the window's first step with the initial distribution instead.
    mixture_tokens = torch.from_numpy(sources.sum(0) / 2).round().long()
    expected = chain_scores(priors, likelihood, mixture_tokens, result.tokens)
    torch.testing.assert_close(result.log_scores, expected)
    assert int(result.fallback_steps.sum()) == 0
    np.testing.assert_allclose(result.stems, result.raw_stems)


def test_three_source_pipeline_ranks_by_consistency():
    k = 8
    g = torch.Generator().manual_seed(2)
    priors = [ContextMarkov(torch.rand(k) + 0.1, torch.rand(k, k) + 0.1) for _ in range(3)]
    levels = [torch.randint(0, 3, (k, k, k), generator=g).float() for _ in range(2)]
    mixture = np.random.default_rng(0).uniform(0, 2 * (k - 1), 200)

    def run(consistency: str):
        likelihood = ChainLikelihood(levels, 0.1)
        return separate_waveform(
            "mlass-bp", LatticeCodec(k), priors, likelihood, mixture, num_candidates=5, top_k=4,
            consistency=consistency,
        )  # fmt: skip

    result = run("wiener")
    errors = mixture_error(mixture, LatticeCodec(k).decode(result.tokens).numpy().astype(float))
    np.testing.assert_allclose(errors, result.candidate_consistency)
    assert result.chosen == int(np.argmin(errors))
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-4)
    # consistency="ensemble": the same candidates, masks from all of them.
    ensemble = run("ensemble")
    torch.testing.assert_close(ensemble.tokens, result.tokens)
    decoded = LatticeCodec(k).decode(result.tokens).numpy().astype(float)  # (C, N, L)
    # float32 masks and STFTs (bounded memory) against float64 wiener_stems: float32 tolerance
    np.testing.assert_allclose(ensemble.stems, wiener_stems(mixture, decoded), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(ensemble.raw_stems, result.raw_stems)  # the chosen one's
    assert not np.allclose(ensemble.stems, result.stems)


def test_window_validation_and_context():
    priors, _ = lattice_problem(2, 8, 10, 0)
    assert prior_context(priors) == 12
    counts = torch.ones(8, 8, 8)
    with pytest.raises(ValueError, match="exceed the prior context"):
        separate_waveform(
            "lass",
            LatticeCodec(8),
            priors,
            CountLikelihood(counts),
            np.ones(20),
            window_tokens=12,
            prefix_tokens=3,
        )
    with pytest.raises(ValueError, match="consistency"):
        separate_waveform(
            "lass", LatticeCodec(8), priors, CountLikelihood(counts), np.ones(20), consistency="x"
        )


def test_level_normalisation_brings_the_mean_to_the_nominal_level():
    from latsep.audio.levels import active_rms
    from latsep.models.separation.observation import level_gain

    rng = np.random.default_rng(0)
    mixture = rng.standard_normal(22050) * 10 ** (-50 / 20)  # a very quiet upload
    for n in (2, 3):
        gain = level_gain(mixture, n, -22.5)
        level = 20 * np.log10(active_rms(gain * mixture / n))
        assert level == pytest.approx(-22.5 - 10 * np.log10(n), abs=1e-6)
    assert level_gain(mixture, 2, None) == 1.0
    assert level_gain(np.zeros(100), 2, -22.5) == 1.0  # silence: nothing to scale
    assert level_gain(mixture * 1e-6, 2, -22.5) == pytest.approx(100.0)  # at most +40 dB


def test_separation_does_not_depend_on_the_upload_level():
    """With level normalisation the models see the same tokens at any input level; the
    stems scale with the upload and still sum to it."""
    k = 16
    priors, sources = lattice_problem(2, k, length=30, seed=1)
    counts = mean_code_counts(k)

    class ScaledLattice(LatticeCodec):  # integer codes live at 1/100 of full scale
        def encode(self, audio):
            return super().encode(audio * 100.0)

        def decode(self, tokens):
            return super().decode(tokens) / 100.0

    def run(gain):
        return separate_waveform(
            "lass",
            ScaledLattice(k),
            priors,
            CountLikelihood(counts, 0.0),
            gain * sources.sum(0) / 100.0,
            num_candidates=4,
            seed=5,
            stem_level_dbfs=-30.0,
            references=gain * sources / 100.0,
        )

    nominal, loud = run(1.0), run(8.0)
    assert torch.equal(nominal.tokens, loud.tokens)
    assert loud.input_gain == pytest.approx(nominal.input_gain / 8.0)
    np.testing.assert_allclose(loud.stems, 8.0 * nominal.stems, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loud.stems.sum(0), 8.0 * sources.sum(0) / 100.0, atol=1e-4)
    np.testing.assert_allclose(loud.raw_stems, 8.0 * nominal.raw_stems, rtol=1e-5)
    assert loud.oracle_index == nominal.oracle_index
