"""Codec shapes, code ranges, round trips, EMA codebook behaviour and the LQ loss."""

from __future__ import annotations

import pytest
import torch

from latsep.models.codec import (
    Codec,
    CodecConfig,
    EMAQuantizer,
    linearization_loss,
    multi_resolution_stft_loss,
    normalized_l2,
)


def tiny_codec(seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    return Codec(CodecConfig.tiny())


@pytest.mark.parametrize("length", [256, 1000, 1024 + 7])
def test_encode_decode_shapes_and_code_range(length: int) -> None:
    codec = tiny_codec().eval()
    audio = torch.randn(3, length) * 0.1
    tokens = codec.encode(audio)
    hop = codec.hop_length
    assert tokens.dtype == torch.long
    assert tokens.shape == (3, -(-length // hop))
    assert int(tokens.min()) >= 0 and int(tokens.max()) < codec.num_tokens
    decoded = codec.decode(tokens)
    assert decoded.shape == (3, tokens.shape[1] * hop)
    assert torch.isfinite(decoded).all()


def test_properties() -> None:
    codec = tiny_codec()
    assert codec.sample_rate == 22050
    assert codec.hop_length == 16
    assert codec.codebook.shape == (16, 8)
    assert "quantizer.embedding" in dict(codec.named_buffers())


def test_codeword_lookup_then_quantise_returns_the_codes() -> None:
    codec = tiny_codec().eval()
    tokens = torch.randint(0, codec.num_tokens, (2, 12))
    with torch.inference_mode():
        again = codec.quantizer.quantize_codes(codec.quantizer.lookup(tokens))
    assert torch.equal(again, tokens)


def test_training_reduces_reconstruction_error() -> None:
    # A short fit on one fixed signal: encode → decode round trip gets better.
    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny())
    t = torch.arange(2048) / 22050
    audio = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.1 * torch.sin(2 * torch.pi * 550 * t))[
        None
    ].repeat(4, 1)
    optimizer = torch.optim.Adam(codec.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = codec(audio)
        loss = normalized_l2(audio, out.reconstruction) + 0.1 * out.commitment_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(normalized_l2(audio, out.reconstruction.detach())))
    codec.eval()
    with torch.inference_mode():
        decoded = codec.decode(codec.encode(audio))[:, : audio.shape[1]]
    final = float(normalized_l2(audio, decoded))
    assert final < 0.5 * losses[0]


def test_ema_quantizer_initialises_on_data_and_restarts_dead_codes() -> None:
    torch.manual_seed(0)
    q = EMAQuantizer(num_tokens=8, code_dim=2, decay=0.5, dead_code_threshold=1.0)
    q.train()
    # Two tight clusters: after a few updates every code sits near one of them.
    z = torch.cat([torch.randn(1, 2, 50) * 0.01 + 5, torch.randn(1, 2, 50) * 0.01 - 5], dim=2)
    for _ in range(5):
        out = q(z)
    assert bool(q.initialized)
    assert out.codes.min() >= 0 and out.codes.max() < 8
    distance_to_clusters = torch.minimum(
        (q.embedding - 5).norm(dim=1), (q.embedding + 5).norm(dim=1)
    )
    assert float(distance_to_clusters.max()) < 0.5
    # Quantised output equals the codewords in value (straight-through only in gradient).
    assert torch.allclose(out.quantized, q.lookup(out.codes), atol=1e-5)


def test_ema_update_moves_code_to_cluster_mean() -> None:
    q = EMAQuantizer(num_tokens=2, code_dim=1, decay=0.9, dead_code_threshold=0.0)
    q.initialized.fill_(True)
    q.embedding.copy_(torch.tensor([[0.0], [10.0]]))
    q.embedding_sum.copy_(q.embedding)
    q.cluster_size.fill_(1.0)
    q.train()
    z = torch.full((1, 1, 4), 2.0)  # all nearest to code 0
    for _ in range(200):
        q(z)
    assert abs(float(q.embedding[0, 0]) - 2.0) < 1e-2


def test_stft_and_l2_losses_are_zero_for_identical_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4096)
    resolutions = ((512, 128), (256, 64))
    assert float(multi_resolution_stft_loss(x, x, resolutions)) < 1e-5
    assert float(normalized_l2(x, x)) == 0.0
    y = x + 0.3 * torch.randn_like(x)
    assert float(multi_resolution_stft_loss(x, y, resolutions)) > 0.01
    assert float(normalized_l2(x, y)) > 0.01


def _quantizer_with(codebook: torch.Tensor) -> EMAQuantizer:
    q = EMAQuantizer(num_tokens=codebook.shape[0], code_dim=codebook.shape[1])
    q.embedding.copy_(codebook)
    q.initialized.fill_(True)
    return q.eval()


def test_linearization_loss_zero_on_exactly_linear_case() -> None:
    # Codebook closed under midpoints of the pairs used: q(½e_a + ½e_b) = e_mid, and the
    # mixture latent is exactly that midpoint, so the loss must vanish.
    codebook = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 0.0]])
    q = _quantizer_with(codebook)
    a = codebook[[1, 1, 0]].t()[None]  # (1, D, T)
    b = codebook[[2, 0, 0]].t()[None]
    mix = 0.5 * (a + b)
    assert float(linearization_loss(q, a, b, mix)) == 0.0


def test_linearization_loss_positive_when_not_linear() -> None:
    codebook = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 0.0]])
    q = _quantizer_with(codebook)
    a = codebook[[1]].t()[None]
    b = codebook[[2]].t()[None]
    mix = codebook[[0]].t()[None]  # encoder maps the mixture far from the midpoint
    loss = linearization_loss(q, a, b, mix.clone().requires_grad_(True))
    assert float(loss.detach()) > 0.5
    # ...and it passes gradient to the mixture latent (straight-through).
    mix_param = mix.clone().requires_grad_(True)
    linearization_loss(q, a, b, mix_param).backward()
    assert mix_param.grad is not None and float(mix_param.grad.abs().sum()) > 0


def test_linearization_loss_on_codec_with_linear_encoder_is_zero() -> None:
    # End to end through a codec whose encoder is linear and whose codebook contains the
    # sources' latents and their midpoints: enc(mean) = mean(enc) exactly.
    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny()).eval()
    for module in codec.encoder.modules():
        if isinstance(module, torch.nn.ELU):
            module.forward = lambda x: x  # type: ignore[method-assign]
        if isinstance(module, torch.nn.Conv1d) and module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    a = torch.randn(1, 64)
    b = torch.randn(1, 64)
    with torch.no_grad():
        za, zb, zm = codec.embed(a), codec.embed(b), codec.embed(0.5 * (a + b))
        assert torch.allclose(zm, 0.5 * (za + zb), atol=1e-4)
        flat = torch.cat([za, zb, zm], dim=2)[0].t()  # (3T, D) = (12, 8): fits K = 16
        codec.quantizer.embedding[: flat.shape[0]] = flat
    assert float(linearization_loss(codec.quantizer, za, zb, zm)) < 1e-8
    assert float(linearization_loss(codec.quantizer, za, zb, za)) > 0.0


def test_config_round_trip_and_validation() -> None:
    config = CodecConfig.default()
    assert CodecConfig.from_dict(config.to_dict()) == config
    assert config.hop_length == 64
    with pytest.raises(ValueError):
        CodecConfig(strides=(3,))
    with pytest.raises(ValueError):
        CodecConfig.from_dict({"bogus": 1})


def test_nearest_code_search_stays_fp32_under_bf16_autocast() -> None:
    from latsep.models.codec import Codec, CodecConfig

    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny()).eval()
    latents = torch.randn(4, codec.config.code_dim, 50)
    expected = codec.quantizer.quantize_codes(latents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(codec.quantizer.quantize_codes(latents), expected)
    audio = 0.1 * torch.randn(3, 4000)
    with torch.inference_mode():
        exact, fast = codec.encode(audio), codec.encode(audio, bf16=True)
    assert exact.shape == fast.shape
    assert (exact == fast).float().mean() > 0.9  # bf16 latents move only a few tokens
