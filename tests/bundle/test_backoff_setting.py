"""The count tables' backoff strength in the manifest: off by default, recorded by
`latsep bundle set-likelihood`, checked at load, and what every count method's likelihood uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bundle import make_bundle

from latsep.bundle import BundleError, load_bundle, set_likelihood
from latsep.cli import main
from latsep.models.likelihood import BackoffTable


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "plain")


def test_backoff_is_off_until_set_then_used_by_the_count_methods(plain: Path) -> None:
    bundle = load_bundle(plain, device="cpu")
    assert bundle.default_backoff == 0.0
    assert not isinstance(bundle.likelihood("lass", ("bass", "drums")).table, BackoffTable)
    assert set_likelihood(plain, backoff=16.0)["backoff"] == 16.0
    bundle = load_bundle(plain, device="cpu")
    lass = bundle.likelihood("lass", ("bass", "drums")).table
    assert isinstance(lass, BackoffTable) and lass.backoff.strength == 16.0
    assert lass.backoff.kind == "product"
    chain = bundle.likelihood("mlass-bp", ("bass", "drums", "other"))
    assert all(level.backoff.kind == "mixture" for level in chain.levels)  # forward messages
    pair_chain = bundle.likelihood("mlass-bp", ("bass", "drums"))  # = lass, exactly
    a, b, y = (torch.arange(8) % 4 for _ in range(3))
    torch.testing.assert_close(
        pair_chain.log_prob(torch.stack([a, b], 1), y),
        bundle.likelihood("lass", ("bass", "drums")).log_prob(a, b, y),
    )
    # An explicit override wins; 0 turns it off.
    off = bundle.likelihood("lass", ("bass", "drums"), backoff=0.0)
    assert not isinstance(off.table, BackoffTable)


def test_bad_backoff_values_are_refused(plain: Path) -> None:
    with pytest.raises(ValueError, match="backoff"):
        set_likelihood(plain, backoff=-1.0)
    manifest_path = plain / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["likelihood"]["backoff"] = "lots"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="backoff"):
        load_bundle(plain, device="cpu")


def test_cli_set_likelihood_and_show(plain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "set-likelihood", str(plain), "--backoff", "8"]) == 0
    capsys.readouterr()
    assert main(["bundle", "show", str(plain)]) == 0
    assert json.loads(capsys.readouterr().out)["likelihood"]["backoff"] == 8.0
    assert main(["bundle", "set-likelihood", str(plain), "--backoff", "-2"]) == 2


def test_latent_sigma_adds_the_continuous_latent_per_method(tmp_path: Path) -> None:
    lq = make_bundle(tmp_path / "lq", kind="lq")
    pair = ("bass", "drums")
    bundle = load_bundle(lq, device="cpu")
    # No entry: both methods score the mixture's token only.
    assert bundle.likelihood("lqvae", pair).latent_sigma is None
    assert bundle.likelihood("hybrid", pair).latent_sigma is None
    recorded = set_likelihood(lq, latent_sigma={"lqvae": 0.4})["latent_sigma"]
    assert recorded == {"lqvae": 0.4}
    bundle = load_bundle(lq, device="cpu")
    latent = bundle.likelihood("lqvae", pair)
    assert latent.latent_sigma == 0.4 and latent.sigma == 0.5  # the token σ stays
    assert bundle.likelihood("hybrid", pair).latent_sigma is None  # per method
    assert bundle.likelihood("lqvae", pair, latent_sigma=0.0).latent_sigma is None
    hybrid = bundle.likelihood("hybrid", pair, latent_sigma=2.0)
    assert hybrid.latent_sigma == 2.0
    torch.testing.assert_close(hybrid.latent_codebook, bundle.codec.codebook.detach().cpu())
    both = set_likelihood(lq, latent_sigma={"hybrid": 3.0})["latent_sigma"]
    assert both == {"lqvae": 0.4, "hybrid": 3.0}
    assert set_likelihood(lq, latent_sigma={"lqvae": 0.0})["latent_sigma"] == {"hybrid": 3.0}
    assert "latent_sigma" not in set_likelihood(lq, latent_sigma={"hybrid": 0.0})
    with pytest.raises(ValueError, match="latent_sigma"):
        set_likelihood(lq, latent_sigma={"lqvae": -1.0})
    with pytest.raises(ValueError, match="latent_sigma names 'lass'"):
        set_likelihood(make_bundle(tmp_path / "plain"), latent_sigma={"lass": 0.4})
    manifest_path = lq / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for bad in ({"lqvae": "wide"}, 0.4, {"mlass-pe": 1.0}):
        manifest["likelihood"]["latent_sigma"] = bad
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="latent_sigma"):
            load_bundle(lq, device="cpu")


def test_cli_fits_and_records_the_latent_sigma(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from corpus_support import write_corpus
    from latsep.corpus import STEMS

    lq = make_bundle(tmp_path / "lq", kind="lq")
    rng = np.random.default_rng(0)
    stems = {stem: 0.1 * rng.standard_normal(3 * 22_050) for stem in STEMS}
    corpus = write_corpus(tmp_path / "corpus", {"song": ("train", stems)})
    args = ["bundle", "fit-latent-sigma", str(lq), "--corpus", str(corpus), "--crops", "4"]
    assert main(args) == 0
    fitted = json.loads(capsys.readouterr().out)["latent_sigma"]
    assert fitted > 0
    assert "latent_sigma" not in json.loads((lq / "manifest.json").read_text())["likelihood"]
    assert main([*args, "--record"]) == 0
    capsys.readouterr()
    recorded = json.loads((lq / "manifest.json").read_text())["likelihood"]["latent_sigma"]
    assert recorded == {"lqvae": pytest.approx(fitted)}  # same seed, same crops
    args = ["bundle", "set-likelihood", str(lq), "--latent-sigma", "hybrid", "2.5"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["bundle", "show", str(lq)]) == 0
    sigmas = json.loads(capsys.readouterr().out)["likelihood"]["latent_sigma"]
    assert sigmas == {"lqvae": pytest.approx(fitted), "hybrid": 2.5}
    plain = make_bundle(tmp_path / "plain")
    assert main(["bundle", "fit-latent-sigma", str(plain), "--corpus", str(corpus)]) == 2
