"""The benchmark's small parts against hand computation: settings, rows, aggregates, table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latsep.bundle import load_bundle
from latsep.corpus import Chunk
from latsep.evaluation import BenchConfig, Overrides, aggregate, markdown_table, plan_cases, summary
from latsep.evaluation.cache import ChunkCache
from latsep.evaluation.config import METHOD_DEFAULTS, method_settings
from latsep.evaluation.machine import cpu_model
from latsep.evaluation.runner import chunk_seed


def test_summary_skips_nulls_and_counts() -> None:
    out = summary([1.0, None, 4.0, math.nan, 2.0])
    assert out == {"mean": pytest.approx(7 / 3), "median": 2.0, "count": 3}
    assert summary([None]) == {"mean": None, "median": None, "count": 0}


def test_aggregate_matches_hand_computation() -> None:
    records = [
        {"seconds": 1.0, "scores": {"a": {"sdr": 1.0}, "b": {"sdr": 3.0}}},
        {"seconds": 3.0, "scores": {"a": {"sdr": 5.0}, "b": {"sdr": None}}},
        {"seconds": 2.0, "scores": {"a": {"sdr": -1.0}, "b": {"sdr": 0.0}}},
    ]
    agg = aggregate(records, ["a", "b"], chunk_seconds=4.0)
    assert agg["chunks"] == 3
    assert agg["scores"]["a"]["sdr"] == {"mean": pytest.approx(5 / 3), "median": 1.0, "count": 3}
    assert agg["scores"]["b"]["sdr"] == {"mean": 1.5, "median": 1.5, "count": 2}
    # per chunk the mean over sources (2, 5, -0.5), then over chunks
    assert agg["scores"]["all"]["sdr"]["mean"] == pytest.approx((2 + 5 - 0.5) / 3)
    assert agg["scores"]["all"]["sdr"]["median"] == pytest.approx(2.0)
    assert agg["seconds_per_chunk"]["median"] == 2.0
    assert agg["rtf"] == pytest.approx(0.5)


def test_overrides_apply_except_the_weight_of_mlass_bp_on_three() -> None:
    given = Overrides(num_candidates=3, likelihood_weight=0.5)
    lass = method_settings("lass", 2, given)
    assert (lass.num_candidates, lass.likelihood_weight) == (3, 0.5)
    assert lass.temperature == METHOD_DEFAULTS["lass"].temperature
    assert method_settings("mlass-bp", 2, given).likelihood_weight == 0.5
    bp3 = method_settings("mlass-bp", 3, given)
    assert (bp3.num_candidates, bp3.likelihood_weight) == (3, 1.0)


def test_bundle_defaults_sit_between_overrides_and_ours() -> None:
    tuned = {"num_candidates": 8, "likelihood_weight": 2.0, "search": "beam"}
    lass = method_settings("lass", 2, Overrides(num_candidates=3), tuned)
    assert (lass.num_candidates, lass.likelihood_weight, lass.search) == (3, 2.0, "beam")
    assert lass.top_k == METHOD_DEFAULTS["lass"].top_k
    assert method_settings("mlass-bp", 3, Overrides(), tuned).likelihood_weight == 1.0


def test_rows_for_the_tiny_bundles(tiny_bundles) -> None:
    bundles = [load_bundle(tiny_bundles / name, "cpu") for name in ("lq", "plain")]
    ids = {b.name: b.name + "-sha" for b in bundles}
    cases, skipped = plan_cases(
        bundles,
        methods=None,
        source_counts=(2, 3),
        overrides=Overrides(),
        identity={},
        bundle_ids=ids,
    )
    rows = [(c.kind, c.method, c.num_sources, c.bundle) for c in cases]
    assert rows == [
        ("method", "lass", 2, "plain"),
        ("method", "lqvae", 2, "lq"),
        ("method", "hybrid", 2, "lq"),
        ("method", "mlass-bp", 2, "plain"),
        ("method", "mlass-pe", 2, "plain"),
        ("ceiling", None, 2, "plain"),
        ("ceiling", None, 2, "lq"),
        ("baseline", None, 2, None),
        ("method", "mlass-bp", 3, "plain"),
        ("method", "mlass-pe", 3, "plain"),
        ("ceiling", None, 3, "plain"),
        ("baseline", None, 3, None),
    ]
    assert skipped == []
    assert len({c.key for c in cases}) == len(cases)  # every row caches apart
    # a changed setting or bundle is a different row for the cache
    again, _ = plan_cases(
        bundles,
        methods=["lass"],
        source_counts=(2,),
        overrides=Overrides(num_candidates=2),
        identity={},
        bundle_ids=ids,
    )
    assert again[0].key != cases[0].key and again[1].key == cases[5].key


def test_a_method_s_mask_gains_change_its_own_row_only(tiny_bundles, tmp_path) -> None:
    """Gains fitted for mlass-pe on three sources make that row a new one for the cache and
    leave every other row (and the bundle's identity: the manifest file's sha256 while it
    has no gains, as before gains existed) as it was; rows without gains ignore them."""
    import shutil

    import numpy as np

    from latsep.bundle import set_mask_gains
    from latsep.bundle.manifest import sha256_of
    from latsep.evaluation.runner import bundle_identity
    from latsep.models.separation.band_gains import BandGains

    shutil.copytree(tiny_bundles, tmp_path / "tiny")
    plain = tmp_path / "tiny" / "plain"

    def keys(mask_gains: bool = True) -> tuple[list[tuple], str]:
        bundles = [load_bundle(tmp_path / "tiny" / n, "cpu") for n in ("lq", "plain")]
        ids = {b.name: bundle_identity(b) for b in bundles}
        cases, _ = plan_cases(
            bundles,
            methods=None,
            source_counts=(2, 3),
            overrides=Overrides(),
            identity={},
            bundle_ids=ids,
            mask_gains=mask_gains,
        )
        return [(c.kind, c.method, c.num_sources, c.key) for c in cases], ids["plain"]

    before, plain_id = keys()
    assert plain_id == sha256_of(plain / "manifest.json")  # earlier runs' rows stay valid
    three = ("bass", "drums", "other")
    gains = BandGains((100.0, 200.0), np.arange(9.0).reshape(3, 3)).to_manifest(three)
    set_mask_gains(plain, "mlass-pe:bass+drums+other", gains)
    after, plain_id_after = keys()
    assert plain_id_after == plain_id != sha256_of(plain / "manifest.json")
    changed = [a[:3] for a, b in zip(after, before, strict=True) if a != b]
    assert changed == [("method", "mlass-pe", 3)]
    assert keys(mask_gains=False)[0] == before


def test_markdown_table_has_one_row_per_row() -> None:
    def scores(kind: str) -> dict:
        metrics = ["sdr", "si_sdr"]
        if kind == "method":
            metrics = [
                f"{m}_{p}" for m in metrics for p in ("wiener", "ensemble", "none", "oracle")
            ]
        s = {m: {"mean": 1.234, "median": 1.0, "count": 1} for m in metrics}
        return {"bass": s, "drums": s, "all": s}

    def row(kind: str, label: str, n: int) -> dict:
        agg = {"chunks": 1, "scores": scores(kind)}
        if kind == "method":
            agg |= {"seconds_per_chunk": {"median": 2.0}, "rtf": 0.5}
        return {
            "kind": kind,
            "label": label,
            "sources": ["bass", "drums", "other"][:n],
            "bundle": "plain",
            "aggregate": agg,
        }

    rows = [row("method", "lass", 2), row("method", "mlass-pe", 2), row("baseline", "base", 2)]
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| lass | 2 | plain | 1 | 1.23 / 1.23 / 1.23 / 1.23 |")
    assert lines[2].endswith("| 2.00 | 0.50 |")
    assert lines[4].startswith("| base | 2 | plain | 1 | 1.23 | 1.23 |  |")


def test_cache_ignores_a_cut_line_and_stores_nan_as_null(tmp_path) -> None:
    path = tmp_path / "chunks.jsonl"
    cache = ChunkCache(path)
    cache.add({"case": "k", "chunk": "s@0", "scores": {"a": {"sdr": math.nan, "x": 1.23456}}})
    with path.open("a") as f:
        f.write('{"case": "k", "chunk": "s@1", "sco')  # interrupted mid-write
    again = ChunkCache(path)
    assert again.get("k", "s@0")["scores"]["a"] == {"sdr": None, "x": 1.2346}
    assert again.get("k", "s@1") is None


def test_chunk_seed_depends_on_the_chunk_not_on_its_neighbours() -> None:
    a = Chunk("song", 0, np.zeros((2, 4), np.float32), np.zeros(4, np.float32))
    b = Chunk("song", 4, np.zeros((2, 4), np.float32), np.zeros(4, np.float32))
    assert chunk_seed(0, a) == chunk_seed(0, a)
    assert len({chunk_seed(0, a), chunk_seed(0, b), chunk_seed(1, a)}) == 3


def test_cpu_model_reads_cpuinfo(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t: x\n")
    assert cpu_model(info) == "Test CPU 9000"


def test_config_serialises_paths(tmp_path) -> None:
    config = BenchConfig(bundles=tmp_path, corpus=tmp_path, out=tmp_path)
    assert config.to_dict()["out"] == str(tmp_path)
