"""One routing rule for the API and the worker: the first bundle serving the set."""

from __future__ import annotations

from latsep.jobs import BundleInfo, first_serving


def info(name: str, sets: list[list[str]]) -> BundleInfo:
    sources = sorted({s for x in sets for s in x})
    return BundleInfo(
        name=name,
        sources=sources,
        methods=["lass"],
        max_sources={"lass": 2},
        source_sets={"lass": sets},
        sample_rate=22050,
    )


def test_the_first_bundle_serving_the_set_wins_in_any_order() -> None:
    bundles = [
        info("a", [["bass", "other"]]),
        info("b", [["bass", "drums"]]),
        info("c", [["drums", "bass"], ["bass", "other"]]),
    ]
    assert first_serving(bundles, "lass", ["drums", "bass"]) == 1
    assert first_serving(bundles, "lass", ["other", "bass"]) == 0
    assert first_serving(bundles, "lass", ["bass", "piano"]) is None
    assert first_serving(bundles, "mlass-pe", ["bass", "drums"]) is None  # not served at all
    assert first_serving([], "lass", ["bass", "drums"]) is None
