"""Gains by band on the masks' power in a bundle: fitted and recorded by `latsep bundle
fit-mask-gains`, checked at load, found per method and set of sources, used by the Separator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_bundle import make_bundle

from latsep.bundle import BundleError, load_bundle, set_mask_gains
from latsep.cli import main
from latsep.methods import SearchSettings
from latsep.models.separation import Separator
from latsep.models.separation.band_gains import BandGains

THREE = ("bass", "drums", "other")


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "plain")


def _entry(sources=THREE, bands: int = 3) -> dict:
    gains = np.arange(len(sources) * bands, dtype=float).reshape(len(sources), bands)
    return BandGains(tuple(100.0 * 2**k for k in range(bands - 1)), gains).to_manifest(sources)


def test_cli_fits_records_and_replaces_a_method_s_gains(
    plain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from corpus_support import write_corpus

    rng = np.random.default_rng(0)
    stems = {stem: 0.1 * rng.standard_normal(6 * 22_050) for stem in THREE}
    corpus = write_corpus(tmp_path / "corpus", {"song": ("valid", stems)})
    args = ["bundle", "fit-mask-gains", str(plain), "--corpus", str(corpus), "--chunks", "2"]
    assert main([*args, "--method", "mlass-pe"]) == 0
    printed = json.loads(capsys.readouterr().out)["mask_gains"]["mlass-pe"]
    recorded = json.loads((plain / "manifest.json").read_text())["mask_gains"]
    assert list(recorded) == ["mlass-pe:bass+drums+other"]
    entry = recorded["mlass-pe:bass+drums+other"]
    assert entry == printed and entry["chunks"] == 2 and entry["split"] == "valid"
    gains = np.array([entry["gains_db"][s] for s in THREE])
    assert gains.shape == (3, len(entry["edges_hz"]) + 1)
    np.testing.assert_allclose(gains.mean(0), 0.0, atol=2e-3)  # only ratios matter
    assert np.abs(gains).max() > 0.01  # random models: the fit moved something

    bundle = load_bundle(plain, device="cpu")
    reordered = bundle.mask_gains("mlass-pe", ("other", "bass", "drums"))
    assert reordered is not None
    np.testing.assert_allclose(reordered.gains_db, gains[[2, 0, 1]])
    assert bundle.mask_gains("mlass-bp", THREE) is None  # per method
    assert bundle.mask_gains("mlass-pe", ("bass", "drums")) is None  # per set of sources
    assert Separator(bundle, "mlass-pe", THREE).mask_gains is not None
    assert Separator(bundle, "mlass-pe", THREE, mask_gains=False).mask_gains is None

    # Another fit of the same set, in another order, replaces the first.
    set_mask_gains(plain, "mlass-pe:other+bass+drums", _entry(("other", "bass", "drums")))
    assert list(json.loads((plain / "manifest.json").read_text())["mask_gains"]) == [
        "mlass-pe:other+bass+drums"
    ]
    capsys.readouterr()
    assert main(["bundle", "show", str(plain)]) == 0
    assert json.loads(capsys.readouterr().out)["mask_gains"] == ["mlass-pe:other+bass+drums"]
    assert main([*args, "--method", "mlass-pe", "--sources", "bass,cowbell"]) == 2
    assert main([*args, "--method", "mlass-pe", "--split", "train"]) == 2  # no train songs


def test_the_separator_hands_the_bundle_s_gains_to_the_separation(plain: Path) -> None:
    set_mask_gains(plain, "mlass-bp:bass+drums+other", _entry())
    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)

    separator = Separator(load_bundle(plain, device="cpu"), "mlass-bp", THREE, separate=fake)
    separator.separate(np.zeros(100), SearchSettings(num_candidates=2))
    assert isinstance(seen["mask_gains"], BandGains)
    np.testing.assert_allclose(seen["mask_gains"].gains_db, np.arange(9.0).reshape(3, 3))


@pytest.mark.parametrize(
    ("name", "entry", "problem"),
    [
        ("nomethod:bass+drums", _entry(("bass", "drums")), "malformed"),
        ("lass:bass+cowbell", _entry(("bass", "cowbell")), "lacks"),
        ("lass:bass+drums", _entry(THREE), "not"),
        ("lass:bass+drums", {**_entry(("bass", "drums")), "edges_hz": [100.0]}, "bands"),
    ],
)
def test_malformed_gains_are_refused(plain: Path, name: str, entry: dict, problem: str) -> None:
    with pytest.raises(BundleError, match=problem):
        set_mask_gains(plain, name, entry)
    manifest_path = plain / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert "mask_gains" not in manifest  # nothing was written
    manifest["mask_gains"] = {name: entry}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=problem):
        load_bundle(plain, device="cpu")


def test_two_entries_for_one_method_and_set_are_refused(plain: Path) -> None:
    manifest_path = plain / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["mask_gains"] = {
        "lass:bass+drums": _entry(("bass", "drums")),
        "lass:drums+bass": _entry(("drums", "bass")),
    }
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="twice"):
        load_bundle(plain, device="cpu")
