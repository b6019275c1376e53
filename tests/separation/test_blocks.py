"""After the search, candidates are decoded, scored and masked a block of time at a time: the
blocked path gives what the whole-length one gives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from latsep.audio.io import Upload
from latsep.evaluation.mask_gains import gain_sample
from latsep.models.codec import Codec, CodecConfig
from latsep.models.separation import (
    apply_masks,
    decode_tokens,
    estimate_masks,
    mixture_error,
    si_sdr,
    wiener_stems,
)
from latsep.models.separation import pipeline as waveform
from latsep.models.separation.band_gains import BandGains
from latsep.models.separation.consistency import SiSdrSums
from latsep.models.separation.hpss import MaskPrior
from latsep.models.separation.masks import (
    SMOOTH_FRAMES,
    MaskGrid,
    StftGrid,
    consensus_power,
    masks_from_power,
)
from latsep.models.separation.result import Separation

RATE = 22050
N, C = 3, 4


def random_search(method, priors, likelihood, mixture_tokens, **kw):
    """A stand-in for the token search: seeded random tokens of the right shape."""
    c, t = kw["num_candidates"], int(mixture_tokens.shape[0])
    return Separation(
        tokens=torch.randint(0, 16, (c, len(priors), t), generator=kw["generator"]),
        log_scores=torch.zeros(c, dtype=torch.float64),
        fallback_steps=torch.zeros(c, dtype=torch.long),
        origins=torch.arange(c),
    )


@pytest.fixture
def problem(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(waveform, "separate", random_search)
    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny()).eval()  # declares its receptive fields: runs in chunks
    rng = np.random.default_rng(0)
    length = 9000  # 36 frames of the models' STFT
    mixture = (0.1 * rng.standard_normal(length)).astype(np.float32)
    references = 0.05 * rng.standard_normal((N, length))
    upload = Upload((0.1 * rng.standard_normal((2, 18001))).astype(np.float32), 44100)
    return codec, mixture, references, upload


def separate(problem, consistency: str, block_frames: int, **kw):
    codec, mixture, references, upload = problem
    return waveform.separate_waveform(
        "mlass-pe",
        codec,
        [object()] * N,  # no context: one window; the stand-in search ignores them
        None,
        mixture,
        num_candidates=C,
        consistency=consistency,
        references=references,
        codec_bf16=False,
        stem_level_dbfs=-20.0,
        upload=upload,
        block_frames=block_frames,
        **kw,
    )


@pytest.mark.parametrize("consistency", ["ensemble", "wiener", "none"])
@pytest.mark.parametrize("block_frames", [1, 5, 7])
def test_small_blocks_give_the_whole_length_result(problem, consistency, block_frames) -> None:
    whole = separate(problem, consistency, 10**6)
    blocked = separate(problem, consistency, block_frames)
    torch.testing.assert_close(blocked.tokens, whole.tokens)
    # The decoder's chunks differ by block: the audio agrees to float32 rounding.
    np.testing.assert_allclose(blocked.candidate_consistency, whole.candidate_consistency, 1e-6)
    np.testing.assert_allclose(blocked.oracle_si_sdr, whole.oracle_si_sdr, rtol=1e-6)
    assert (blocked.chosen, blocked.oracle_index) == (whole.chosen, whole.oracle_index)
    np.testing.assert_allclose(blocked.raw_stems, whole.raw_stems, atol=1e-6)
    np.testing.assert_allclose(blocked.stems, whole.stems, atol=1e-6)
    for b, w in zip(blocked.upload_stems, whole.upload_stems, strict=True):
        np.testing.assert_allclose(b, w, atol=1e-6)


@pytest.mark.parametrize("consistency", ["ensemble", "wiener", "none"])
def test_the_blocked_path_computes_what_whole_arrays_give(problem, consistency) -> None:
    """Against the whole-length computations: every candidate decoded at once, its
    consistency and SI-SDR, Wiener masks from the summed power, applied to the upload."""
    codec, mixture, references, upload = problem
    result = separate(problem, consistency, 5)
    decoded = decode_tokens(codec, result.tokens, len(mixture)) / result.input_gain  # (C, N, L)
    errors = mixture_error(mixture.astype(np.float64), decoded)
    np.testing.assert_allclose(result.candidate_consistency, errors, rtol=1e-6)
    oracle = si_sdr(references, decoded).mean(-1)
    np.testing.assert_allclose(result.oracle_si_sdr, oracle, rtol=1e-6)
    assert result.chosen == int(np.argmin(errors))
    assert result.oracle_index == int(np.argmax(oracle))
    chosen = decoded[result.chosen]
    np.testing.assert_allclose(result.raw_stems, chosen, atol=1e-6)
    mixed = {"ensemble": decoded, "wiener": chosen}.get(consistency)
    if mixed is None:  # "none": the raw sources, resampled for the upload
        np.testing.assert_allclose(result.stems, chosen, atol=1e-6)
        assert all(np.array_equal(s[:, 0], s[:, 1]) for s in result.upload_stems)
        return
    stems = wiener_stems(mixture.astype(np.float64), mixed)
    np.testing.assert_allclose(result.stems, stems, rtol=2e-6, atol=1e-6)
    expected = apply_masks(estimate_masks(mixed, RATE), upload.audio, upload.sample_rate)
    got = np.stack([s.T for s in result.upload_stems])  # (N, channels, L0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(0), upload.audio, atol=1e-5)


def test_upload_stems_alone_are_the_same(problem) -> None:
    both = separate(problem, "ensemble", 5)
    alone = separate(problem, "ensemble", 5, model_rate_stems=False)
    assert alone.stems is None and alone.raw_stems is None
    for a, b in zip(alone.upload_stems, both.upload_stems, strict=True):
        np.testing.assert_array_equal(a, b)
    none = separate(problem, "none", 5, model_rate_stems=False)
    for a, b in zip(none.upload_stems, separate(problem, "none", 5).upload_stems, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_si_sdr_from_sums_over_blocks_is_si_sdr() -> None:
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((2, 500)) + 0.3  # not zero-mean
    estimates = np.stack([refs + s * rng.standard_normal((2, 500)) for s in (0.01, 1.0, 5.0)])
    estimates = np.concatenate([estimates, refs[None]])  # an exact one
    sums = SiSdrSums(refs, len(estimates))
    edges = [0, 1, 77, 300, 499, 500]
    for c, estimate in enumerate(estimates):
        for lo, hi in itertools.pairwise(edges):
            sums.add(c, lo, estimate[:, lo:hi])
    np.testing.assert_allclose(sums.values(), si_sdr(refs, estimates), rtol=1e-9)


def _whole_ensemble_stems(problem, result, smoothing, weights=None) -> np.ndarray:
    """The ensemble's stems (N, L) computed on whole arrays: every candidate decoded whole,
    its consensus power averaged over `smoothing` frames (times the prior's weights), the
    masks on the mixture."""
    codec, mixture, _, _ = problem
    decoded = decode_tokens(codec, result.tokens, len(mixture)) / result.input_gain  # (C, N, L)
    power, grid = consensus_power(decoded, RATE, smoothing=smoothing)
    if weights is not None:
        power = power * weights
    return apply_masks(MaskGrid(masks_from_power(power, grid), grid), mixture[None], RATE)[:, 0]


@pytest.mark.parametrize("block_frames", [1, 5, 10**6])
def test_gains_by_band_weigh_each_source_s_power_as_wiener_stems_does(
    problem, block_frames
) -> None:
    """mask_gains: each source's power times its band's gain before the masks, block by block,
    after the prior and the time averages — the stems `wiener_stems` makes of every candidate
    with the same settings (the power `latsep bundle fit-mask-gains` fits on)."""
    codec, mixture, _, _ = problem
    percussive, smoothing = (False, True, False), (7, 1, 3)
    gains = BandGains((300.0, 2000.0), np.array([[6.0, -3.0, 0.0], [0.0, 3.0, -9.0], [-6, 0, 9]]))
    kw = {"percussive": percussive, "smoothing": smoothing}
    result = separate(problem, "ensemble", block_frames, mask_gains=gains, **kw)
    decoded = decode_tokens(codec, result.tokens, len(mixture)) / result.input_gain
    expected = wiener_stems(mixture, decoded, mask_gains=gains, **kw)
    np.testing.assert_allclose(result.stems, expected, atol=1e-5)
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-5)
    plain = separate(problem, "ensemble", block_frames, **kw)
    assert np.abs(result.stems - plain.stems).max() > 1e-3  # the gains moved the stems
    equal = BandGains((300.0, 2000.0), np.full((3, 3), 4.0))  # the same for every source
    same = separate(problem, "ensemble", block_frames, mask_gains=equal, **kw)
    np.testing.assert_allclose(same.stems, plain.stems, atol=1e-5)
    # the power the gains are fitted on (`fit-mask-gains`) is the one they weigh here
    sample, grid = gain_sample(
        decoded, np.zeros_like(decoded[0]) + mixture / 3, smoothing, percussive
    )
    masks = MaskGrid(masks_from_power(sample.power, grid, gains.weights(grid)), grid)
    np.testing.assert_allclose(apply_masks(masks, mixture[None], RATE)[:, 0], expected, atol=1e-5)
    two_sources = BandGains((300.0,), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="mask_gains"):
        separate(problem, "ensemble", block_frames, mask_gains=two_sources)


@pytest.mark.parametrize("block_frames", [1, 5, 10**6])
def test_the_masks_prior_weighs_each_source_s_power_whatever_the_blocks(
    problem, block_frames
) -> None:
    """With a percussive source, each source's consensus power is weighed by the mix's
    percussive or harmonic share (`hpss.MaskPrior`) before the masks, block by block."""
    _, mixture, _, _ = problem
    percussive = (False, True, False)
    result = separate(problem, "ensemble", block_frames, percussive=percussive, mask_prior=0.5)
    grid = StftGrid.covering(len(mixture), RATE)
    weights = MaskPrior(mixture, grid, percussive, 0.5).weights(0, grid.frames)
    expected = _whole_ensemble_stems(problem, result, SMOOTH_FRAMES, weights)
    np.testing.assert_allclose(result.stems, expected, atol=1e-5)
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-5)
    plain = separate(problem, "ensemble", block_frames)
    assert np.abs(result.stems - plain.stems).max() > 1e-3  # the prior moved the stems
    with pytest.raises(ValueError, match="percussive"):
        separate(problem, "ensemble", block_frames, percussive=(False, True))


@pytest.mark.parametrize("block_frames", [1, 5, 10**6])
def test_each_source_s_own_time_average_whatever_the_blocks(problem, block_frames) -> None:
    """smoothing=(7, 1, 3): each source's consensus power averaged over its own window before
    the masks, block by block as over the whole."""
    _, mixture, _, _ = problem
    result = separate(problem, "ensemble", block_frames, smoothing=(7, 1, 3))
    expected = _whole_ensemble_stems(problem, result, (7, 1, 3))
    np.testing.assert_allclose(result.stems, expected, atol=1e-5)
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-5)
    plain = separate(problem, "ensemble", block_frames)
    assert np.abs(result.stems - plain.stems).max() > 1e-3  # the windows moved the stems
    with pytest.raises(ValueError, match="smoothing"):
        separate(problem, "ensemble", block_frames, smoothing=(7, 1))
