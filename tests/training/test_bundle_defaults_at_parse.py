"""[[bundles]].defaults are checked when the config is parsed, with the bundle module's own
checks, not by save_bundle after hours of training."""

from __future__ import annotations

import pytest

from latsep.training import parse_config


def _config(codec: str, sources: list[str], defaults: dict) -> dict:
    bundle = {"name": "b", "codec": codec, "sources": sources, "defaults": defaults}
    return {"name": "x", "codec": {"num_tokens": 16}, "bundles": [bundle]}


def test_bad_bundle_defaults_in_the_training_config_fail_at_parse_time() -> None:
    data = _config("plain", ["bass", "drums"], {"lass": {"num_candidate": 8}})  # typo
    with pytest.raises(ValueError, match=r"'b'.*unknown fields \['num_candidate'\]"):
        parse_config(data)


@pytest.mark.parametrize(
    ("codec", "sources", "defaults", "message"),
    [
        # methods the bundle's codec kind does not serve
        ("plain", ["bass", "drums"], {"lqvae": {"num_candidates": 4}}, "does not serve"),
        ("lq", ["bass", "drums"], {"mlass-pe": {"num_candidates": 4}}, "does not serve"),
        ("plain", ["bass", "drums"], {"nope": {}}, "does not serve"),
        # values the engine refuses
        ("plain", ["bass", "drums"], {"lass": {"num_candidates": 0}}, ">= 1"),
        ("plain", ["bass", "drums"], {"mlass-pe": {"search": "beam"}}, "search=beam"),
        ("lq", ["bass", "drums"], {"hybrid": {"search": "beam", "temperature": 0.8}},
         "temperature must be 1"),
        # three plain sources carry chain tables: mlass-bp samples exactly only at w = 1
        ("plain", ["bass", "drums", "other"], {"mlass-bp": {"likelihood_weight": 2.0}},
         "must be 1"),
        ("plain", ["bass", "drums"], {"lass": "fast"}, "not an object"),
        ("plain", ["bass", "drums"], ["lass"], "not an object"),
    ],
)  # fmt: skip
def test_defaults_are_checked_against_the_bundle_kind(
    codec: str, sources: list[str], defaults: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(_config(codec, sources, defaults))


def test_shipped_config_parses_with_per_count_defaults() -> None:
    """TOML spells a per-count override as [bundles.defaults.mlass-bp.by_sources.2]."""
    import tomllib

    text = """
    name = "x"
    [codec]
    num_tokens = 16
    [[bundles]]
    name = "plain"
    codec = "plain"
    sources = ["bass", "drums", "other"]
    [bundles.defaults.mlass-bp]
    likelihood_weight = 1.0
    [bundles.defaults.mlass-bp.by_sources.2]
    likelihood_weight = 2.0
    """
    (bundle,) = parse_config(tomllib.loads(text)).bundles
    assert bundle.defaults["mlass-bp"]["by_sources"] == {"2": {"likelihood_weight": 2.0}}


def test_good_defaults_parse_unchanged() -> None:
    cases = [
        ("plain", ["bass", "drums"], {"lass": {"search": "beam", "num_candidates": 4}}),
        ("plain", ["bass", "drums"], {"mlass-bp": {"likelihood_weight": 2.0}}),  # no chain
        ("plain", ["bass", "drums", "other"], {"mlass-pe": {"top_k": 32, "temperature": 0.9}}),
        ("lq", ["bass", "drums"], {"lqvae": {"num_candidates": 2}, "hybrid": {"top_k": None}}),
        (
            "plain",
            ["bass", "drums", "other"],
            {
                "mlass-bp": {
                    "likelihood_weight": 1.0,
                    "by_sources": {"2": {"likelihood_weight": 2.0}},
                }
            },
        ),
    ]
    for codec, sources, defaults in cases:
        (bundle,) = parse_config(_config(codec, sources, defaults)).bundles
        assert bundle.defaults == defaults


@pytest.mark.parametrize(
    ("codec", "sigmas", "message"),
    [
        ("plain", {"lass": 1.0}, "no latent term for 'lass'"),  # not a latent method
        ("plain", {"lqvae": 1.0}, "no latent term for 'lqvae'"),  # not served by plain
        ("lq", {"hybrid": 0.0}, "must be > 0"),
        ("lq", {"lqvae": float("inf")}, "must be > 0"),
    ],
)
def test_bad_latent_sigmas_fail_at_parse_time(codec: str, sigmas: dict, message: str) -> None:
    data = _config(codec, ["bass", "drums"], {})
    data["bundles"][0]["latent_sigma"] = sigmas
    with pytest.raises(ValueError, match=message):
        parse_config(data)


def test_latent_sigmas_are_parsed_per_method() -> None:
    data = _config("lq", ["bass", "drums"], {})
    data["bundles"][0]["latent_sigma"] = {"lqvae": 0.8, "hybrid": 4}
    (spec,) = parse_config(data).bundles
    assert spec.latent_sigma == {"lqvae": 0.8, "hybrid": 4.0}


@pytest.mark.parametrize(
    ("sources", "views", "message"),
    [
        (["bass", "drums"], {"low": {"filter": "lowpass", "cutoff_hz": [200]}}, "three or more"),
        (["bass", "drums", "other"], {"low": {"filter": "lowpass", "cutoff_hz": [0]}}, "cutoff"),
        (["bass", "drums", "other"], {"low": {"filter": "comb", "cutoff_hz": [200]}}, "kind"),
        (["bass", "drums", "other"],
         {"low": {"filter": "lowpass", "cutoff_hz": [200], "weight": -1}}, "weight"),
        (["bass", "drums", "other"], {"low": {"filter": "lowpass", "cutoff_hz": [20000]}},
         "Nyquist"),
        (["bass", "drums", "other"], {"lo-w": {"filter": "lowpass", "cutoff_hz": [200]}},
         "letters"),
    ],
)  # fmt: skip
def test_bad_views_fail_at_parse_time(sources: list, views: dict, message: str) -> None:
    data = _config("plain", sources, {})
    data["bundles"][0]["views"] = views
    with pytest.raises(ValueError, match=message):
        parse_config(data)


def test_views_are_parsed() -> None:
    data = _config("plain", ["bass", "drums", "other"], {})
    data["bundles"][0]["views"] = {"low": {"filter": "lowpass", "cutoff_hz": [200], "weight": 2}}
    (spec,) = parse_config(data).bundles
    assert spec.views == {"low": {"filter": "lowpass", "cutoff_hz": [200], "weight": 2}}
