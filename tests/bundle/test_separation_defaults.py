"""Per-method separation defaults in the manifest: written at save time, edited by
`latsep bundle set-defaults`, checked at load time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bundle import make_bundle, random_tables

from latsep.bundle import BundleError, load_bundle, save_bundle, set_separation_defaults
from latsep.cli import main


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "plain")


def test_defaults_written_at_save_time(tmp_path: Path) -> None:
    import torch

    from latsep.models.codec import Codec, CodecConfig
    from latsep.models.prior.transformer import PriorConfig, TransformerPrior

    torch.manual_seed(0)
    path = save_bundle(
        tmp_path / "b",
        codec=Codec(CodecConfig.tiny()),
        codec_kind="plain",
        priors={s: TransformerPrior(PriorConfig.tiny(num_tokens=16)) for s in ("bass", "drums")},
        tables={"lass:bass+drums": random_tables()["lass:bass+drums"]},
        separation_defaults={"lass": {"num_candidates": 8, "likelihood_weight": 2, "top_k": None}},
    )
    bundle = load_bundle(path, device="cpu")
    assert bundle.separation_defaults("lass") == {
        "num_candidates": 8,
        "likelihood_weight": 2.0,
        "top_k": None,
    }
    assert bundle.separation_defaults("mlass-pe") == {}
    with pytest.raises(BundleError, match="does not serve"):
        bundle.separation_defaults("lqvae")


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"lass": {"beams": 3}}, "unknown fields"),
        ({"lass": {"num_candidates": 0}}, "integer >= 1"),
        ({"lass": {"num_candidates": True}}, "integer >= 1"),
        ({"lass": {"temperature": -1.0}}, "> 0"),
        ({"lass": {"likelihood_weight": float("inf")}}, "finite"),
        ({"lass": {"search": "greedy"}}, "one of"),
        ({"lass": {"search": "beam", "temperature": 0.5}}, "temperature must be 1"),
        ({"mlass-pe": {"search": "beam"}}, "search=beam serves"),
        ({"lqvae": {"num_candidates": 2}}, "does not serve"),
        ({"mlass-bp": {"likelihood_weight": 2.0}}, "must be 1"),  # the bundle has a chain
        ({"lass": 3}, "not an object"),
        ({"lass": {"by_sources": {"1": {"num_candidates": 2}}}}, "source counts >= 2"),
        ({"lass": {"by_sources": {"two": {}}}}, "source counts >= 2"),
        ({"mlass-pe": {"by_sources": {"03": {}}}}, "source counts >= 2"),  # "3" only
        ({"mlass-pe": {"by_sources": {"²": {}}}}, "source counts >= 2"),
        ({"lass": {"by_sources": {"3": {"num_candidates": 2}}}}, "separates two sources"),
        ({"lass": {"by_sources": [1]}}, "not an object"),
        ({"lass": {"by_sources": {"2": {"by_sources": {}}}}}, "unknown fields"),
        ({"lass": {"by_sources": {"2": {"top_k": 0}}}}, r"by_sources\['2'\].top_k"),
        ({"mlass-pe": {"by_sources": {"3": {"search": "beam"}}}}, "search=beam serves"),
        ({"lass": {"search": "beam", "by_sources": {"2": {"temperature": 0.5}}}}, "must be 1"),
        # the chain (3 sources) samples exactly only at w = 1; 2 sources may take any weight
        ({"mlass-bp": {"by_sources": {"3": {"likelihood_weight": 2.0}}}}, "must be 1"),
        (
            {"mlass-bp": {"by_sources": {"3": {"likelihood_weight": 2}, "03": {}}}},
            "source counts",
        ),
        (
            {"mlass-bp": {"likelihood_weight": 2.0, "by_sources": {"3": {"likelihood_weight": 1}}}},
            "must be 1",
        ),
    ],
)
def test_bad_defaults_are_refused_at_save(tmp_path: Path, defaults, message: str) -> None:
    from latsep.bundle.defaults import check_separation_defaults

    with pytest.raises(ValueError, match=message):
        check_separation_defaults(defaults, ["lass", "mlass-bp", "mlass-pe"], has_chain=True)


def test_defaults_per_source_count_override_the_method_defaults() -> None:
    from latsep.bundle.defaults import check_separation_defaults, defaults_for

    stored = {
        "num_candidates": 4,
        "likelihood_weight": 1,
        "by_sources": {"2": {"likelihood_weight": 2}},
    }
    checked = check_separation_defaults({"mlass-bp": stored}, ["mlass-bp"], has_chain=True)
    assert checked["mlass-bp"] == {
        "num_candidates": 4,
        "likelihood_weight": 1.0,
        "by_sources": {"2": {"likelihood_weight": 2.0}},
    }
    assert defaults_for(checked["mlass-bp"], 2) == {"num_candidates": 4, "likelihood_weight": 2.0}
    assert defaults_for(checked["mlass-bp"], 3) == {"num_candidates": 4, "likelihood_weight": 1.0}
    assert defaults_for({}, 3) == {}


def test_set_defaults_for_one_source_count(plain: Path) -> None:
    set_separation_defaults(plain, "mlass-bp", {"num_candidates": 4})
    entry = set_separation_defaults(plain, "mlass-bp", {"likelihood_weight": 2.0}, num_sources=2)
    assert entry == {"num_candidates": 4, "by_sources": {"2": {"likelihood_weight": 2.0}}}
    bundle = load_bundle(plain, device="cpu")
    assert bundle.separation_defaults("mlass-bp", 2) == {
        "num_candidates": 4,
        "likelihood_weight": 2.0,
    }
    assert bundle.separation_defaults("mlass-bp", 3) == {"num_candidates": 4}
    assert bundle.separation_defaults("mlass-bp") == entry  # as stored
    with pytest.raises(BundleError, match="must be 1"):  # the chain: three sources
        set_separation_defaults(plain, "mlass-bp", {"likelihood_weight": 2.0}, num_sources=3)
    emptied = set_separation_defaults(plain, "mlass-bp", {}, unset=["likelihood_weight"],
                                      num_sources=2)  # fmt: skip
    assert emptied == {"num_candidates": 4}  # the last override gone: no empty by_sources


def test_set_defaults_merges_unsets_and_keeps_the_bundle_valid(plain: Path) -> None:
    assert set_separation_defaults(plain, "lass", {"num_candidates": 8}) == {"num_candidates": 8}
    merged = set_separation_defaults(plain, "lass", {"likelihood_weight": 2.5, "top_k": 4})
    assert merged == {"num_candidates": 8, "likelihood_weight": 2.5, "top_k": 4}
    set_separation_defaults(plain, "mlass-pe", {"temperature": 0.9})
    after = set_separation_defaults(plain, "lass", {}, unset=["top_k", "num_candidates"])
    assert after == {"likelihood_weight": 2.5}
    bundle = load_bundle(plain, device="cpu")  # hashes still hold
    assert bundle.separation_defaults("lass") == {"likelihood_weight": 2.5}
    assert bundle.separation_defaults("mlass-pe") == {"temperature": 0.9}
    set_separation_defaults(plain, "mlass-pe", {}, unset=["temperature"])
    manifest = json.loads((plain / "manifest.json").read_text())
    assert manifest["separation_defaults"] == {"lass": {"likelihood_weight": 2.5}}
    assert not list(plain.glob(".*tmp"))


def test_set_defaults_refuses_bad_values_and_corrupt_bundles(plain: Path) -> None:
    before = (plain / "manifest.json").read_text()
    with pytest.raises(BundleError, match="must be 1"):
        set_separation_defaults(plain, "mlass-bp", {"likelihood_weight": 2.0})
    with pytest.raises(BundleError, match="does not serve"):
        set_separation_defaults(plain, "hybrid", {"num_candidates": 2})
    assert (plain / "manifest.json").read_text() == before
    prior = plain / "prior-bass.safetensors"
    prior.write_bytes(prior.read_bytes()[:-1])
    with pytest.raises(BundleError, match="sha256"):
        set_separation_defaults(plain, "lass", {"num_candidates": 2})


def test_edited_defaults_in_the_manifest_are_refused_at_load(plain: Path) -> None:
    manifest = json.loads((plain / "manifest.json").read_text())
    manifest["separation_defaults"] = {"lass": {"num_candidates": -1}}
    (plain / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="num_candidates"):
        load_bundle(plain, device="cpu")


def test_cli_set_defaults_and_show(plain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bundle", "set-defaults", str(plain), "--method", "lass", "--num-candidates", "8",
            "--likelihood-weight", "2", "--no-top-k"]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_candidates"] == 8 and printed["likelihood_weight"] == 2.0
    assert printed["top_k"] is None
    assert main(["bundle", "set-defaults", str(plain), "--method", "lass", "--unset", "top_k"]) == 0
    capsys.readouterr()
    assert main(["bundle", "show", str(plain)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["separation_defaults"] == {"lass": {"num_candidates": 8, "likelihood_weight": 2.0}}
    assert shown["format_version"] == 2 and shown["bytes"]["total"] > 0
    bad = ["bundle", "set-defaults", str(plain), "--method", "mlass-bp", "--likelihood-weight", "3"]
    assert main(bad) == 2
    assert "must be 1" in capsys.readouterr().err
    assert main(["bundle", "set-defaults", str(plain), "--method", "lass"]) == 2
    capsys.readouterr()
    two = ["bundle", "set-defaults", str(plain), "--method", "mlass-bp", "--sources", "2",
           "--likelihood-weight", "2"]  # fmt: skip
    assert main(two) == 0
    assert json.loads(capsys.readouterr().out)["by_sources"] == {"2": {"likelihood_weight": 2.0}}
