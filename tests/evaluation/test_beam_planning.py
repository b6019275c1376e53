"""`--search beam` is settled when the rows are planned, not by the engine mid-run: the
many-source methods sample (and their rows say so), and beam with a temperature other than
1 is refused up front."""

from __future__ import annotations

import pytest

from latsep.bundle import load_bundle
from latsep.evaluation import BenchConfig, run_bench
from latsep.evaluation.cases import METHOD, plan_cases
from latsep.evaluation.config import Overrides, beam_skipped, method_settings


def test_beam_override_is_not_given_to_the_many_source_methods() -> None:
    for method in ("mlass-bp", "mlass-pe"):
        for n in (2, 3):
            assert method_settings(method, n, Overrides(search="beam")).search == "sample"
            assert beam_skipped(method, Overrides(search="beam"))
    for method in ("lass", "lqvae", "hybrid"):
        assert method_settings(method, 2, Overrides(search="beam")).search == "beam"
        assert not beam_skipped(method, Overrides(search="beam"))
    assert not beam_skipped("mlass-pe", Overrides())


def test_beam_with_a_temperature_is_refused_at_planning_time() -> None:
    with pytest.raises(ValueError, match="from the command line"):
        method_settings("lass", 2, Overrides(search="beam", temperature=0.8))
    # A bundle tuned at temperature 0.9 meets --search beam from the command line.
    with pytest.raises(ValueError, match="the bundle's tuned default"):
        method_settings("hybrid", 2, Overrides(search="beam"), {"temperature": 0.9})
    # ... and a bundle tuned for beam meets --temperature.
    with pytest.raises(ValueError, match=r"temperature is 0\.7"):
        method_settings("lass", 2, Overrides(temperature=0.7), {"search": "beam"})
    # --search sample lifts it; temperature 1 is fine with beam.
    assert method_settings("lass", 2, Overrides(search="sample"), {"temperature": 0.9}).search == (
        "sample"
    )
    assert method_settings("lass", 2, Overrides(search="beam", temperature=1.0)).search == "beam"


def test_planned_rows_record_the_search_they_run(tiny_bundles) -> None:
    bundles = [load_bundle(tiny_bundles / name, "cpu") for name in ("lq", "plain")]
    cases, _ = plan_cases(
        bundles,
        methods=None,
        source_counts=(2, 3),
        overrides=Overrides(search="beam"),
        identity={},
        bundle_ids={b.name: b.name for b in bundles},
    )
    searches = {(c.method, c.num_sources): c.describe()["settings"]["search"] for c in cases
                if c.kind == METHOD}  # fmt: skip
    assert searches == {
        ("lass", 2): "beam",
        ("lqvae", 2): "beam",
        ("hybrid", 2): "beam",
        ("mlass-bp", 2): "sample",
        ("mlass-pe", 2): "sample",
        ("mlass-bp", 3): "sample",
        ("mlass-pe", 3): "sample",
    }


def test_run_refuses_before_separating_and_notes_skipped_beam(
    tiny_bundles, corpus, tmp_path
) -> None:
    def must_not_run(*args, **kwargs):
        raise AssertionError("separated before the settings were checked")

    config = BenchConfig(bundles=tiny_bundles, corpus=corpus, out=tmp_path, chunks=1,
                         seconds=1.0, methods=("mlass-pe", "lass"), sources=(2,), threads=1,
                         overrides=Overrides(search="beam", temperature=0.5))  # fmt: skip
    with pytest.raises(ValueError, match="lass: search=beam"):
        run_bench(config, separate=must_not_run)
    messages: list[str] = []
    config = BenchConfig(**{**vars(config), "methods": ("mlass-pe",),
                            "overrides": Overrides(search="beam")})  # fmt: skip
    with pytest.raises(AssertionError):  # planning passed; the first separation is reached
        run_bench(config, separate=must_not_run, progress=messages.append)
    assert any("mlass-pe N=2 has no beam search" in m for m in messages)
