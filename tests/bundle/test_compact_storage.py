"""Compact bundles (format 2): narrow-integer npz tables and fp16 weights, read back exactly
(tables) or within fp16 rounding (weights); version-1 bundles still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_bundle import K, make_bundle

from latsep.bundle import FORMAT_VERSION, BundleError, load_bundle
from latsep.bundle.manifest import sha256_of
from latsep.bundle.tables import load_table, save_table, smallest_unsigned
from latsep.models.codec import Codec, CodecConfig
from latsep.models.prior.transformer import PriorConfig, TransformerPrior

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "tiny"


def random_level(rng: np.random.Generator, k: int, nnz: int, top: int):
    """Distinct triples in random (unsorted) order with counts up to `top`."""
    keys = rng.choice(k**3, size=min(nnz, k**3 // 2), replace=False)
    indices = np.stack([keys // (k * k), (keys // k) % k, keys % k]).astype(np.int64)
    counts = rng.integers(1, top, size=keys.size, dtype=np.int64)
    counts[0] = top  # the largest count is stored too
    return indices, counts


def as_dict(indices, counts) -> dict[tuple[int, int, int], int]:
    return {tuple(map(int, t)): int(c) for t, c in zip(np.asarray(indices).T, counts, strict=True)}


@pytest.mark.parametrize(
    ("k", "top", "index_dtype", "count_dtype"),
    [
        (2048, 2**16 + 7, np.uint16, np.uint32),  # counts above 2^16, K above 1024
        (16, 200, np.uint8, np.uint8),
        (300, 2**40, np.uint16, np.uint64),  # beyond 32 bits
    ],
)
def test_table_round_trip_is_exact_in_the_narrowest_types(
    tmp_path: Path, k: int, top: int, index_dtype, count_dtype
) -> None:
    rng = np.random.default_rng(k)
    levels = [random_level(rng, k, 5000, top), random_level(rng, k, 3000, top)]
    path = tmp_path / "t.npz"
    save_table(path, levels)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["level0.indices"].dtype == index_dtype
        assert npz["level0.counts"].dtype == count_dtype
        stored = npz["level1.indices"].astype(np.int64)
    # Sorted by (z1, z2, y): the flattened keys increase.
    flat = (stored[0] * k + stored[1]) * k + stored[2]
    assert np.all(np.diff(flat) > 0)
    loaded = load_table(path, (k, k, k), levels=2)
    for (indices, counts), (got_indices, got_counts) in zip(levels, loaded, strict=True):
        assert got_indices.dtype == torch.long and got_counts.dtype == torch.long
        assert as_dict(got_indices.numpy(), got_counts.numpy()) == as_dict(indices, counts)
        assert int(got_counts.max()) == top


def test_smallest_unsigned_boundaries() -> None:
    assert smallest_unsigned(0) is np.uint8 and smallest_unsigned(255) is np.uint8
    assert smallest_unsigned(256) is np.uint16 and smallest_unsigned(65535) is np.uint16
    assert smallest_unsigned(65536) is np.uint32 and smallest_unsigned(2**32) is np.uint64


def test_empty_level_round_trips(tmp_path: Path) -> None:
    empty = (np.zeros((3, 0), np.int64), np.zeros(0, np.int64))
    save_table(tmp_path / "e.npz", [empty])
    ((indices, counts),) = load_table(tmp_path / "e.npz", (4, 4, 4), levels=1)
    assert indices.shape == (3, 0) and counts.shape == (0,)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"level0.indices": np.zeros((3, 2), np.float32), "level0.counts": np.ones(2, np.uint8)},
         "not integers"),
        ({"level0.indices": np.full((3, 2), 16, np.uint8), "level0.counts": np.ones(2, np.uint8)},
         "outside"),
        ({"level0.indices": np.zeros((3, 2), np.int8), "level0.counts": -np.ones(2, np.int8)},
         "negative"),
        ({"level0.indices": np.zeros((2, 2), np.uint8), "level0.counts": np.ones(2, np.uint8)},
         "not COO"),
        ({"level0.indices": np.zeros((3, 2), np.uint8)}, "missing"),
        ({"level0.indices": np.array([None, 1], dtype=object),
          "level0.counts": np.ones(2, np.uint8)}, "unreadable"),
    ],
)  # fmt: skip
def test_bad_tables_are_refused(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(BundleError, match=message):
        load_table(path, (16, 16, 16), levels=1)


def test_garbage_table_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BundleError, match="unreadable"):
        load_table(path, (16, 16, 16), levels=1)


def _outputs(codec: Codec, prior: TransformerPrior, audio: torch.Tensor, tokens: torch.Tensor):
    with torch.inference_mode():
        codes = codec.encode(audio)
        decoded = codec.decode(tokens)
        state = prior.initial_state(1)
        log_probs = [prior.log_probs(state)]
        for t in tokens[0, :8]:
            state = prior.advance(state, t.view(1))
            log_probs.append(prior.log_probs(state))
    return codes, decoded, torch.stack(log_probs)


def test_fp16_weights_round_trip_within_fp16_tolerance(tmp_path: Path) -> None:
    half = load_bundle(make_bundle(tmp_path / "half"), device="cpu")
    assert half.manifest["format_version"] == FORMAT_VERSION == 2
    assert half.manifest["weights"] == {"dtype": "float16", "float32": ["quantizer."]}
    stored = load_file(str(half.root / "prior-bass.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    codec_file = load_file(str(half.root / "codec.safetensors"))
    assert codec_file["quantizer.embedding"].dtype == torch.float32  # decides the tokens
    assert codec_file["encoder.net.0.weight"].dtype == torch.float16
    # In memory everything is fp32 again.
    assert all(p.dtype == torch.float32 for p in half.codec.parameters())
    assert all(p.dtype == torch.float32 for p in half.prior("bass").parameters())

    torch.manual_seed(0)  # make_bundle's exact fp32 models
    codec = Codec(CodecConfig.tiny()).eval()
    codec.quantizer.embedding.normal_()
    prior = TransformerPrior(PriorConfig.tiny(num_tokens=K)).eval()
    audio = 0.3 * torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    tokens = torch.randint(0, K, (1, 40), generator=torch.Generator().manual_seed(2))
    codes, decoded, log_probs = _outputs(codec, prior, audio, tokens)
    codes16, decoded16, log_probs16 = _outputs(half.codec, half.prior("bass"), audio, tokens)
    assert torch.equal(half.codec.codebook, codec.codebook)
    assert (codes16 != codes).float().mean() < 0.01
    assert torch.allclose(decoded16, decoded, rtol=0, atol=2e-3 * float(decoded.abs().max()))
    assert torch.allclose(log_probs16, log_probs, atol=1e-2)
    assert not torch.equal(log_probs16, log_probs)  # it really went through fp16


def test_fp32_weights_round_trip_exactly_and_fp16_halves_them(tmp_path: Path) -> None:
    from test_bundle import random_tables

    from latsep.bundle import save_bundle

    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny())
    priors = {s: TransformerPrior(PriorConfig.tiny(num_tokens=K)) for s in ("bass", "drums")}
    tables = {"lass:bass+drums": random_tables()["lass:bass+drums"]}
    sizes = {}
    for dtype in ("float32", "float16"):
        path = save_bundle(tmp_path / dtype, codec=codec, codec_kind="plain", priors=priors,
                           tables=tables, weights_dtype=dtype)  # fmt: skip
        sizes[dtype] = (path / "prior-bass.safetensors").stat().st_size
    exact = load_bundle(tmp_path / "float32", device="cpu")
    for name, value in priors["bass"].state_dict().items():
        assert torch.equal(exact.prior("bass").state_dict()[name], value)
    assert sizes["float16"] < 0.6 * sizes["float32"]
    with pytest.raises(ValueError, match="weights_dtype"):
        save_bundle(tmp_path / "x", codec=codec, codec_kind="plain", priors=priors,
                    tables=tables, weights_dtype="int8")  # fmt: skip


def test_weights_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    """A bool buffer stored as float (hash updated, so only the dtype check can catch it)."""
    from safetensors.torch import save_file

    path = make_bundle(tmp_path / "b")
    weights = load_file(str(path / "codec.safetensors"))
    weights["quantizer.initialized"] = weights["quantizer.initialized"].float()
    save_file(weights, str(path / "codec.safetensors"))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["codec.safetensors"] = sha256_of(path / "codec.safetensors")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"quantizer\.initialized"):
        load_bundle(path, device="cpu")


def test_table_entry_count_must_match_the_manifest(tmp_path: Path) -> None:
    path = make_bundle(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["tables"]["lass:bass+drums"]["nnz"] = [1]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="entries"):
        load_bundle(path, device="cpu")


def test_version_1_bundles_still_load() -> None:
    """artifacts/tiny was written in format 1 (int64 safetensors tables, fp32 weights)."""
    manifest = json.loads((SHIPPED / "plain" / "manifest.json").read_text())
    if manifest["format_version"] != 1:
        pytest.skip("the shipped bundles were regenerated in a newer format")
    bundle = load_bundle(SHIPPED / "plain", device="cpu")
    assert bundle.likelihood("lass", bundle.source_sets("lass")[0]).num_tokens == bundle.num_tokens
    assert bundle.separation_defaults("lass") == {}
