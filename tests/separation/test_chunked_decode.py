"""Long audio through the codec in overlapping chunks gives the whole pass: decode, spans of
the decode, and encode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latsep.models.codec import Codec, CodecConfig
from latsep.models.separation.chunks import (
    decode_distinct,
    decode_rows,
    decode_span,
    decode_tokens,
    encode_latents,
    encode_samples,
    encode_with_latents,
)


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


@pytest.mark.parametrize(
    ("lo", "hi"), [(-50, 300), (0, 7), (333, 2000), (5000, 5400), (5390, 5600)]
)
def test_a_span_of_the_decode_is_that_span_of_the_whole_decode(lo: int, hi: int) -> None:
    """Samples [lo, hi) as the whole decode, trimmed to `length`, has them; zeros outside."""
    model = codec(CodecConfig.tiny())
    rows = torch.randint(0, model.num_tokens, (4, 340), generator=torch.Generator())
    length = 5395
    whole = decode_tokens(model, rows[None], length)[0]  # (4, L) float64
    padded = np.zeros((4, 7000), dtype=np.float64)
    padded[:, 100 : 100 + length] = whole
    span = decode_span(model, rows, lo, hi, length)
    assert span.dtype == np.float32 and span.shape == (4, hi - lo)
    np.testing.assert_allclose(span, padded[:, 100 + lo : 100 + hi], rtol=0, atol=1e-6)


def _repetitive_rows(model: Codec) -> torch.Tensor:
    """Rows as a resampling search leaves them: 0-10 share their first 280 tokens, 3 and 4
    are one row, 5 and 0 share their last 40 tokens too, 11 is its own (11 distinct)."""
    g = torch.Generator().manual_seed(2)
    rows = torch.randint(0, model.num_tokens, (12, 340), generator=g)
    rows[1:11, :280] = rows[0, :280]
    rows[4] = rows[3]
    rows[5, 300:] = rows[0, 300:]
    return rows


@pytest.mark.parametrize("piece_tokens", [1, 16, 50, 10**6])
@pytest.mark.parametrize(("lo", "hi"), [(-50, 300), (0, 5395), (333, 2000), (5000, 5600)])
def test_decoding_distinct_pieces_gives_every_rows_decode(
    piece_tokens: int, lo: int, hi: int
) -> None:
    model = codec(CodecConfig.tiny())
    rows, length = _repetitive_rows(model), 5395
    expected = np.concatenate([decode_span(model, row[None], lo, hi, length) for row in rows])
    got = decode_distinct(model, rows, lo, hi, length, piece_tokens=piece_tokens)
    assert got.dtype == np.float32 and got.shape == (12, hi - lo)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_what_rows_share_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token-rows through the decoder: identical rows cost one row; rows sharing a stretch
    decode it once when pieces cost less than whole rows."""
    model = codec(CodecConfig.tiny())
    decoded: list[int] = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda t: decoded.append(t.numel()) or decode(t))
    length = 340 * model.hop_length
    one = torch.randint(0, model.num_tokens, (1, 340), generator=torch.Generator())
    decode_distinct(model, one.repeat(8, 1), 0, length, length)
    assert sum(decoded) == 340
    decoded.clear()
    rows = _repetitive_rows(model)
    decode_distinct(model, rows, 0, length, length, piece_tokens=16)
    assert sum(decoded) < 11 * 340  # pieces: the shared 280 tokens decoded once
    decoded.clear()
    decode_distinct(model, rows, 0, length, length, piece_tokens=10**6)
    assert sum(decoded) == 11 * 340  # whole rows: the distinct ones


@pytest.mark.parametrize(
    ("preset", "chunk_tokens"), [("tiny", 1), ("tiny", 13), ("default", 37), ("default", 250)]
)
def test_chunked_encode_equals_the_whole_encode(preset: str, chunk_tokens: int) -> None:
    model = codec(getattr(CodecConfig, preset)())
    audio = np.random.default_rng(0).standard_normal(300 * model.hop_length).astype(np.float32)
    audio *= np.float32(0.1)
    with torch.inference_mode():
        whole = model.encode(torch.from_numpy(audio)[None])[0]
    torch.testing.assert_close(encode_samples(model, audio, chunk_tokens=10**9), whole)
    torch.testing.assert_close(encode_samples(model, audio, chunk_tokens=chunk_tokens), whole)


@pytest.mark.parametrize("chunk_tokens", [13, 10**9])
def test_tokens_with_latents_are_what_each_encode_gives(chunk_tokens: int) -> None:
    """One encoder pass for both (the codec quantises its latents): the same tokens as
    `encode_samples` and the same latents as `encode_latents`, chunked or whole."""
    model = codec(CodecConfig.tiny())
    audio = np.random.default_rng(1).standard_normal(300 * model.hop_length).astype(np.float32)
    audio *= np.float32(0.1)
    tokens, latents = encode_with_latents(model, audio, chunk_tokens=chunk_tokens)
    assert tokens.dtype == torch.long
    torch.testing.assert_close(tokens, encode_samples(model, audio, chunk_tokens=chunk_tokens))
    torch.testing.assert_close(
        latents, encode_latents(model, audio, chunk_tokens=chunk_tokens), rtol=0, atol=0
    )


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
