"""The engine with our transformer prior (tiny, random weights): scores match a full pass."""

from __future__ import annotations

import torch
from sep_bruteforce import random_counts

from latsep.models.likelihood import CountLikelihood
from latsep.models.prior.transformer import PriorConfig, TransformerPrior
from latsep.models.separation import separate


def test_scores_equal_the_priors_full_forward_pass():
    torch.manual_seed(0)
    k = 16
    priors = [TransformerPrior(PriorConfig.tiny(k)).eval() for _ in range(2)]
    g = torch.Generator().manual_seed(1)
    likelihood = CountLikelihood(random_counts(k, g) + 0.5, 0.1)
    prefix = torch.randint(0, k, (3, 2, 5), generator=g)  # (C, N, P)
    y = torch.randint(0, k, (12,), generator=g)
    for search in ("sample", "beam"):
        result = separate(
            "lass",
            priors,
            likelihood,
            y,
            search=search,
            num_candidates=3,
            top_k=6,
            prefix=prefix,
            generator=g,
        )
        full = torch.cat([prefix[result.origins], result.tokens], 2)  # (C, N, P + T)
        expected = torch.zeros(full.shape[0], dtype=torch.float64)
        for i, prior in enumerate(priors):
            expected += prior.sequence_log_probs(full[:, i])[:, 5:].double().sum(1)
        for t in range(12):
            expected += likelihood.log_prob(
                result.tokens[:, 0, t], result.tokens[:, 1, t], y[t].expand(full.shape[0])
            )
        torch.testing.assert_close(result.log_scores, expected, atol=1e-3, rtol=1e-5)


def test_pipeline_runs_with_our_codec_and_priors():
    """Shapes and contracts end to end with the real (untrained, tiny) codec and priors."""
    import numpy as np

    from latsep.models.codec.config import CodecConfig
    from latsep.models.codec.model import Codec
    from latsep.models.separation import Codec as CodecProtocol
    from latsep.models.separation import separate_waveform

    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny()).eval()
    assert isinstance(codec, CodecProtocol)
    k = codec.codebook.shape[0]
    priors = [TransformerPrior(PriorConfig.tiny(k)).eval() for _ in range(2)]
    g = torch.Generator().manual_seed(2)
    likelihood = CountLikelihood(random_counts(k, g) + 0.1, 0.1)
    rng = np.random.default_rng(0)
    length = codec.hop_length * 70 + 5  # > one window of the tiny prior, not a multiple of hop
    mixture = rng.standard_normal(length).astype(np.float32) * 0.1
    result = separate_waveform(
        "lass", codec, priors, likelihood, mixture, num_candidates=3, top_k=8, prefix_tokens=8,
        codec_bf16=False,
    )  # fmt: skip
    assert result.stems.shape == (2, length) and result.raw_stems.shape == (2, length)
    assert result.tokens.shape == (3, 2, -(-length // codec.hop_length))
    np.testing.assert_allclose(result.stems.sum(0), mixture, atol=1e-4)
    # bf16 decoding of the same tokens: close to fp32, and not bit-identical (it did run).
    from latsep.models.separation import decode_tokens

    exact = decode_tokens(codec, result.tokens, length, False)
    fast = decode_tokens(codec, result.tokens, length, True)
    error = ((fast - exact) ** 2).sum() / (exact**2).sum()
    assert 0 < error < 1e-3  # within −30 dB of fp32
    # bf16 for the whole codec (the mixture encode too, which may move a few tokens): the
    # contract still holds.
    bf16 = separate_waveform(
        "lass", codec, priors, likelihood, mixture, num_candidates=3, top_k=8, prefix_tokens=8,
        codec_bf16=True,
    )  # fmt: skip
    assert bf16.raw_stems.dtype == np.float32 and bf16.tokens.shape == result.tokens.shape
    np.testing.assert_allclose(bf16.stems.sum(0), mixture, atol=1e-4)
