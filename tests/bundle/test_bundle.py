"""Bundle round trip, likelihood construction per method, and refusal of bad bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from latsep.bundle import BundleError, load_bundle, load_bundles, save_bundle
from latsep.models.codec import Codec, CodecConfig
from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    MarginalLikelihood,
)
from latsep.models.prior.transformer import PriorConfig, TransformerPrior
from latsep.training.counts import TableCounter, TablePlan

K = 16
SOURCES = ("bass", "drums", "other")


def random_tables(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    counter = TableCounter(TablePlan(SOURCES, with_chain=True), K)
    shape = (4, 3, 20)
    sources = rng.integers(0, K, size=shape)
    pairs = {p: rng.integers(0, K, size=(4, 20)) for p in [(0, 1), (0, 2), (1, 2)]}
    counter.add(sources, pairs, [pairs[(0, 1)], rng.integers(0, K, size=(4, 20))])
    return counter.tables()


def make_bundle(path: Path, kind: str = "plain", sources=SOURCES) -> Path:
    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny())
    codec.quantizer.embedding.normal_()
    priors = {s: TransformerPrior(PriorConfig.tiny(num_tokens=K)) for s in sources}
    tables = random_tables()
    if kind == "lq":
        tables = {"lass:bass+drums": tables["lass:bass+drums"]}
    return save_bundle(
        path,
        codec=codec,
        codec_kind=kind,
        priors=priors,
        tables=tables,
        gaussian_sigma=0.5 if kind == "lq" else None,
        provenance={"git_commit": "unknown"},
        quality={"codec": {"sdr": {"bass": 1.0}}},
    )


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "plain")


def test_round_trip_plain(plain: Path) -> None:
    bundle = load_bundle(plain, device="cpu")
    assert bundle.sources == SOURCES
    assert bundle.methods == ("lass", "mlass-bp", "mlass-pe")
    assert bundle.num_tokens == K and bundle.hop_length == 16 and bundle.sample_rate == 22050
    assert not bundle.codec.training
    assert bundle.max_sources("lass") == 2 and bundle.max_sources("mlass-bp") == 3
    # Weights survive the round trip exactly.
    torch.manual_seed(0)
    again = Codec(CodecConfig.tiny())
    again.quantizer.embedding.normal_()
    assert torch.equal(bundle.codec.codebook, again.codebook)
    tokens = torch.randint(0, K, (1, 5))
    reference = TransformerPrior(PriorConfig.tiny(num_tokens=K))
    assert bundle.prior("bass").config == reference.config
    assert bundle.manifest["quality"]["codec"]["sdr"]["bass"] == 1.0
    assert bundle.codec.decode(tokens).shape == (1, 80)


def test_likelihoods_match_the_stored_counts(plain: Path) -> None:
    bundle = load_bundle(plain, device="cpu")
    tables = random_tables()
    idx, counts = tables["lass:bass+drums"][0]
    dense = np.zeros((K, K, K))
    np.add.at(dense, tuple(idx), counts)

    lass = bundle.likelihood("lass", ["bass", "drums"], smoothing=0.5)
    assert isinstance(lass, CountLikelihood)
    expected = (dense + 0.5) / (dense.sum(2, keepdims=True) + K * 0.5)
    assert np.allclose(lass.dense().numpy(), expected)
    # The swapped order transposes z1 and z2.
    swapped = bundle.likelihood("lass", ["drums", "bass"], smoothing=0.5)
    assert np.allclose(swapped.dense().numpy(), expected.transpose(1, 0, 2))

    pe2 = bundle.likelihood("mlass-pe", ["bass", "drums"], smoothing=0.0)
    assert isinstance(pe2, MarginalLikelihood)
    column = pe2.column(3).numpy()  # p(y=3 | z_i), (n, K)
    for z in range(K):
        row = dense[z].sum(0)
        if row.sum():
            assert np.isclose(column[0, z], row[3] / row.sum())

    bp = bundle.likelihood("mlass-bp", ["bass", "drums", "other"])
    assert isinstance(bp, ChainLikelihood) and bp.num_sources == 3
    bp_swapped = bundle.likelihood("mlass-bp", ["drums", "bass", "other"])
    assert bp_swapped.num_sources == 3
    with pytest.raises(BundleError, match="order"):
        bundle.likelihood("mlass-bp", ["other", "bass", "drums"])

    pe3 = bundle.likelihood("mlass-pe", ["other", "bass", "drums"], smoothing=0.0)
    m_idx, m_counts = tables["marginal:bass+drums+other"][0]
    m_dense = np.zeros((3, K, K))
    np.add.at(m_dense, tuple(m_idx), m_counts)
    col = pe3.column(5).numpy()
    z = int(m_idx[1][m_idx[0] == 2][0])  # some code seen for "other" (stored position 2)
    assert np.isclose(col[0, z], m_dense[2, z, 5] / m_dense[2, z].sum())

    with pytest.raises(BundleError, match="does not serve"):
        bundle.likelihood("lqvae", ["bass", "drums"])


def test_lq_bundle_serves_lqvae_and_hybrid(tmp_path: Path) -> None:
    path = make_bundle(tmp_path / "lq", kind="lq", sources=("bass", "drums"))
    bundle = load_bundle(path, device="cpu")
    assert bundle.methods == ("lqvae", "hybrid")
    assert isinstance(bundle.likelihood("lqvae", ["bass", "drums"]), GaussianLikelihood)
    assert isinstance(bundle.likelihood("hybrid", ["bass", "drums"]), CountLikelihood)


def test_load_bundles_of_a_directory(tmp_path: Path) -> None:
    make_bundle(tmp_path / "set" / "plain")
    make_bundle(tmp_path / "set" / "lq", kind="lq", sources=("bass", "drums"))
    by_method = load_bundles(tmp_path / "set", device="cpu")
    assert set(by_method) == {"lass", "lqvae", "hybrid", "mlass-bp", "mlass-pe"}
    assert by_method["lqvae"].codec_kind == "lq"


def _edit_manifest(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_tampered_table_is_refused(plain: Path) -> None:
    table = next((plain / "tables").iterdir())
    data = bytearray(table.read_bytes())
    data[-1] ^= 0xFF
    table.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(plain, device="cpu")


def test_missing_file_is_refused(plain: Path) -> None:
    (plain / "prior-drums.safetensors").unlink()
    with pytest.raises(BundleError, match="missing file prior-drums"):
        load_bundle(plain, device="cpu")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=99), "format_version 99"),
        (lambda m: m.update(sample_rate=44100), "sample rate 44100"),
        (lambda m: m.update(num_tokens=32), "K="),
        (lambda m: m["codec"]["config"].update(num_tokens=32), "K="),
        (lambda m: m.update(methods=["lass", "lqvae"]), "cannot serve"),
        (lambda m: m.update(format="other"), "not a latsep bundle"),
        (lambda m: m["files"].pop("codec.safetensors"), "no hash"),
    ],
)
def test_mismatched_manifest_is_refused(plain: Path, edit, message: str) -> None:
    _edit_manifest(plain, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(plain, device="cpu")


def test_weights_that_do_not_fit_are_refused(tmp_path: Path, plain: Path) -> None:
    other = make_bundle(tmp_path / "other")
    # Swap in a codec of another shape, with a matching hash: the shapes must still fail.
    codec = Codec(CodecConfig(num_tokens=K, code_dim=8, width=8, strides=(4, 4), dilations=(1,)))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in codec.state_dict().items()},
              str(other / "codec.safetensors"))  # fmt: skip
    from latsep.bundle.manifest import sha256_of

    _edit_manifest(
        other,
        lambda m: m["files"].update({"codec.safetensors": sha256_of(other / "codec.safetensors")}),
    )
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(other, device="cpu")


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(tmp_path, device="cpu")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path, device="cpu")


def test_save_refuses_to_overwrite(plain: Path) -> None:
    with pytest.raises(FileExistsError):
        make_bundle(plain)
    shutil.rmtree(plain)
