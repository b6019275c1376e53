"""Training configs: presets parse, unknown keys are errors, round trip to dict."""

from __future__ import annotations

import pytest

from latsep.training import load_config, parse_config


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_presets_parse(name: str) -> None:
    config = load_config(name)
    assert config.name == name
    assert config.prior.num_tokens == config.codec.num_tokens
    assert config.codec_kinds() == ("plain", "lq")
    assert config.sources_for("plain") == ("bass", "drums", "other")
    assert config.sources_for("lq") == ("bass", "drums")
    again = parse_config(config.to_dict())
    assert again == config


def test_default_prior_context_covers_three_seconds() -> None:
    config = load_config("default")
    seconds = (config.prior.context - 1) * config.codec.hop_length / config.codec.sample_rate
    assert seconds >= 3.0


def test_unknown_keys_are_errors() -> None:
    data = load_config("tiny").to_dict()
    data["codec_training"]["stepz"] = 3
    with pytest.raises(ValueError, match="stepz"):
        parse_config(data)
    data = load_config("tiny").to_dict()
    data["extra"] = {}
    with pytest.raises(ValueError, match="extra"):
        parse_config(data)


def test_bundle_defaults_are_read_and_unknown_bundle_keys_rejected() -> None:
    from latsep.training.config import parse_config

    base = {"name": "x", "codec": {"num_tokens": 16}}
    entry = {"name": "p", "codec": "plain", "sources": ["bass", "drums"]}
    tuned = dict(entry, defaults={"lass": {"num_candidates": 8, "likelihood_weight": 2.0}})
    config = parse_config(dict(base, bundles=[tuned]))
    assert config.bundles[0].defaults == {"lass": {"num_candidates": 8, "likelihood_weight": 2.0}}
    assert parse_config(dict(base, bundles=[entry])).bundles[0].defaults == {}
    with pytest.raises(ValueError, match="unknown"):
        parse_config(dict(base, bundles=[dict(entry, defualts={})]))
