"""Decoding long token rows in overlapping chunks gives the whole decode; candidates stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latsep.models.codec import Codec, CodecConfig
from latsep.models.separation.pipeline import decode_rows, decode_tokens, iter_candidates


def codec(config: CodecConfig, seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    return Codec(config).eval()


@pytest.mark.parametrize(
    ("preset", "chunk_tokens"),
    [("tiny", 1), ("tiny", 7), ("tiny", 64), ("default", 37), ("default", 250)],
)
def test_chunked_decode_equals_the_whole_decode(preset: str, chunk_tokens: int) -> None:
    model = codec(getattr(CodecConfig, preset)())
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, model.num_tokens, (3, 420), generator=g)
    length = 420 * model.hop_length - 5  # trimmed, as uploads are
    whole = decode_rows(model, rows, length, chunk_tokens=10**9)
    with torch.inference_mode():
        direct = model.decode(rows).numpy()[:, :length]
    np.testing.assert_allclose(whole, direct, rtol=0, atol=1e-6)
    chunked = decode_rows(model, rows, length, chunk_tokens=chunk_tokens)
    scale = np.abs(whole).max()
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5 * scale)


def test_the_decoders_context_covers_its_receptive_field() -> None:
    """Changing one token changes the output only within `receptive_tokens` of it."""
    for config in (CodecConfig.tiny(), CodecConfig.default()):
        model = codec(config)
        rows = torch.zeros(1, 300, dtype=torch.long)
        changed = rows.clone()
        changed[0, 150] = 1
        with torch.inference_mode():
            diff = (model.decode(changed) - model.decode(rows)).abs()[0]
        touched = torch.nonzero(diff > 0).flatten() // config.hop_length
        assert touched.numel() > 0
        reach = max(150 - int(touched.min()), int(touched.max()) - 150)
        assert reach <= model.receptive_tokens


def test_candidates_stream_as_decode_tokens_decodes_them() -> None:
    model = codec(CodecConfig.tiny())
    tokens = torch.randint(0, model.num_tokens, (5, 3, 60), generator=torch.Generator())
    whole = decode_tokens(model, tokens, 60 * model.hop_length + 7)  # zero-padded at the end
    streamed = np.stack(list(iter_candidates(model, tokens, 60 * model.hop_length + 7)))
    assert streamed.dtype == np.float32 and streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    assert not whole[..., -7:].any()


def test_the_encoders_context_covers_its_receptive_field() -> None:
    """Changing one sample changes the latents only within `encoder_receptive_tokens`."""
    for config in (CodecConfig.tiny(), CodecConfig.default()):
        model = codec(config)
        hop = config.hop_length
        audio = torch.zeros(1, 300 * hop)
        changed = audio.clone()
        for at in (150 * hop, 150 * hop + hop - 1):  # a token's first and last sample
            changed.zero_()
            changed[0, at] = 1.0
            with torch.inference_mode():
                diff = (model.embed(changed) - model.embed(audio)).abs()[0].amax(0)
            touched = torch.nonzero(diff > 0).flatten()
            assert touched.numel() > 0
            reach = max(150 - int(touched.min()), int(touched.max()) - 150)
            assert reach <= model.encoder_receptive_tokens
