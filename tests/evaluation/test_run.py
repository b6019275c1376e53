"""run_bench over a synthetic corpus: scores equal direct computation, resume skips done
chunks, and `latsep bench --quick` writes its four files with the real tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_fakes import FakeSeparate

from latsep.cli import main
from latsep.corpus import evaluation_chunks
from latsep.evaluation import BenchConfig, Overrides, run_bench
from latsep.models.metrics import bss_sdr, si_sdr
from latsep.models.separation import wiener_stems
from latsep.models.separation.masks import smoothing_for

SR = 22_050
OUTPUTS = ("results.json", "results.md", "sdr.png", "spectrogram.png")


def _config(tiny_bundles, corpus, out, chunks: int, **kw) -> BenchConfig:
    settings = {"methods": ("lass", "mlass-pe"), "threads": 1, **kw}
    return BenchConfig(
        bundles=tiny_bundles, corpus=corpus, out=out, chunks=chunks, seconds=1.0, **settings
    )


@pytest.fixture
def cheap_sdr(monkeypatch):
    """museval takes ~1 s a call on this machine; tests that do not check SDR values use
    SI-SDR in its place."""
    monkeypatch.setattr("latsep.evaluation.scoring.bss_sdr", lambda ref, est, sr: si_sdr(ref, est))


def _rows(results: dict) -> dict[tuple[str, int], dict]:
    return {(r["label"], len(r["sources"])): r for r in results["rows"]}


def test_scores_equal_direct_computation(tiny_bundles, corpus, tmp_path) -> None:
    fake = FakeSeparate()
    config = _config(tiny_bundles, corpus, tmp_path, 2, methods=("mlass-pe",), sources=(3,))
    results = run_bench(config, separate=fake)
    assert all((tmp_path / name).is_file() for name in OUTPUTS)
    assert set(fake.consistencies) == {"ensemble"}  # the stems returned are the ensemble's
    rows = _rows(results)
    assert set(rows) == {("mlass-pe", 3), ("ceiling: codec plain", 3), ("baseline: mixture / N", 3)}
    for n, names in ((3, ("bass", "drums", "other")),):
        chunks = evaluation_chunks(corpus, names, seconds=1.0, count=2, seed=0)
        baseline = rows[("baseline: mixture / N", n)]["chunks"]
        method = rows[("mlass-pe", n)]["chunks"]
        assert [r["chunk"] for r in baseline] == [f"{c.song_id}@{c.start}" for c in chunks]
        for chunk, base, sep in zip(chunks, baseline, method, strict=True):
            refs = chunk.stems.astype(np.float64)
            mixture = refs.sum(0)  # the plain sum, not the corpus's mean
            expected = bss_sdr(refs, np.repeat(mixture[None] / n, n, 0), SR)
            got = [base["scores"][s]["sdr"] for s in names]
            np.testing.assert_allclose(got, expected, atol=1e-4)
            ensemble = bss_sdr(refs, 0.5 * refs + mixture / (2 * n), SR)  # the fake's stems
            np.testing.assert_allclose(
                [sep["scores"][s]["sdr_ensemble"] for s in names], ensemble, atol=1e-3
            )
            # chosen + Wiener: the chosen raw candidate's own masks on the mixture, with the
            # service's prior that the drums hold the mix's onsets and its time averages
            percussive = (False, True, False)
            own = wiener_stems(
                mixture, 0.5 * refs, percussive=percussive, smoothing=smoothing_for(percussive)
            )
            wiener = bss_sdr(refs, own, SR)
            np.testing.assert_allclose(
                [sep["scores"][s]["sdr_wiener"] for s in names], wiener, atol=1e-3
            )
            raw = si_sdr(refs, 0.5 * refs)  # scale-invariant: the true stems' own SI-SDR
            np.testing.assert_allclose(
                [sep["scores"][s]["si_sdr_none"] for s in names], raw, atol=1e-3
            )
    # aggregates are the mean/median of the per-chunk records
    row = rows[("ceiling: codec plain", 3)]
    values = [r["scores"]["other"]["si_sdr"] for r in row["chunks"]]
    assert row["aggregate"]["scores"]["other"]["si_sdr"]["mean"] == pytest.approx(np.mean(values))
    assert row["aggregate"]["scores"]["other"]["si_sdr"]["median"] == pytest.approx(
        np.median(values)
    )
    table = (tmp_path / "results.md").read_text()
    assert table.count("| mlass-pe | 3 |") == 3  # mean, median and settings tables
    assert table.count("| ceiling: codec plain | 3 |") == 2  # no settings row
    assert "oracle (best of N with references)" in table
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["machine"]["torch_threads"] == 1 and on_disk["bundles"][0]["manifest_sha256"]


def test_resume_separates_only_new_chunks(tiny_bundles, corpus, tmp_path, cheap_sdr) -> None:
    first = FakeSeparate()
    run_bench(_config(tiny_bundles, corpus, tmp_path, 2), separate=first)
    assert len(first.calls) == 3 * 2  # three method rows, two chunks
    again = FakeSeparate()
    run_bench(_config(tiny_bundles, corpus, tmp_path, 2), separate=again)
    assert again.calls == ["mlass-pe"]  # only the spectrogram's example, from the cache
    more = FakeSeparate()
    results = run_bench(_config(tiny_bundles, corpus, tmp_path, 3), separate=more)
    # the third chunk of each method row, + the spectrogram's example when it was cached
    two, three = (
        evaluation_chunks(corpus, ("bass", "drums", "other"), seconds=1.0, count=c, seed=0)
        for c in (2, 3)
    )
    example_cached = (three[0].song_id, three[0].start) in {(c.song_id, c.start) for c in two}
    assert len(more.calls) == 3 * 1 + int(example_cached)
    assert all(r["aggregate"]["chunks"] == 3 for r in results["rows"])
    changed = FakeSeparate()
    config = _config(tiny_bundles, corpus, tmp_path, 3)
    config = BenchConfig(**{**vars(config), "overrides": Overrides(num_candidates=2)})
    run_bench(config, separate=changed)
    assert len(changed.calls) == 3 * 3  # other settings: nothing reused (the example is fresh)


def test_quick_cli_end_to_end(tiny_bundles, corpus, tmp_path, capsys, cheap_sdr) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "bench",
            "--bundles",
            str(tiny_bundles),
            "--corpus",
            str(corpus),
            "--quick",
            "--seconds",
            "1",
            "--methods",
            "mlass-pe",
            "--sources",
            "3",
            "--num-candidates",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert all((out / name).is_file() for name in OUTPUTS)
    results = json.loads((out / "results.json").read_text())
    row = _rows(results)[("mlass-pe", 3)]
    assert row["aggregate"]["chunks"] == 4 and row["settings"]["num_candidates"] == 2
    for record in row["chunks"]:
        assert 0 <= record["oracle_index"] < 2 and record["seconds"] > 0
    assert "mlass-pe N=3 chunk 4/4" in capsys.readouterr().err


def test_heldout_conditions_scale_the_chunks_and_key_the_cache(
    tiny_bundles, corpus, tmp_path, cheap_sdr
) -> None:
    """--level-db scales every chunk (the baseline's SDR does not move), --no-level-norm
    encodes as given, and each condition has its own cached records."""
    nominal = FakeSeparate()
    first = run_bench(_config(tiny_bundles, corpus, tmp_path, 2), separate=nominal)
    assert set(nominal.levels) == {-22.5}  # the bundles' nominal stem level
    quiet = FakeSeparate()
    config = _config(tiny_bundles, corpus, tmp_path, 2, level_db=-12.0, level_norm=False)
    shifted = run_bench(config, separate=quiet)
    assert len(quiet.calls) == len(nominal.calls)  # nothing reused from the nominal run
    assert set(quiet.levels) == {None}
    np.testing.assert_allclose(
        np.array(quiet.peaks), np.array(nominal.peaks) * 10 ** (-12 / 20), rtol=1e-5
    )
    base = {k: r for k, r in _rows(first).items() if k[0].startswith("baseline")}
    for key, row in base.items():
        for source, metrics in row["aggregate"]["scores"].items():
            moved = _rows(shifted)[key]["aggregate"]["scores"][source]["sdr"]["mean"]
            assert moved == pytest.approx(metrics["sdr"]["mean"], abs=1e-3)


def test_compare_margins_and_paired_differences(tiny_bundles, corpus, tmp_path, cheap_sdr):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "compare.py"
    spec = importlib.util.spec_from_file_location("bench_compare", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    results = run_bench(_config(tiny_bundles, corpus, tmp_path / "a", 2), separate=FakeSeparate())
    rows = results["rows"]
    lines = compare.margins(rows, "ensemble")
    method = next(r for r in rows if r["kind"] == "method" and len(r["sources"]) == 2)
    base = next(r for r in rows if r["kind"] == "baseline" and len(r["sources"]) == 2)
    source = method["sources"][0]
    expected = np.mean(
        [
            m["scores"][source]["sdr_ensemble"] - b["scores"][source]["sdr"]
            for m, b in zip(method["chunks"], base["chunks"], strict=True)
        ]
    )
    line = next(x for x in lines if x.startswith(f"| {method['label']} | 2 | {source} |"))
    assert f"{expected:+.2f} ±" in line
    table = compare.summary([("a", rows), ("b", rows)], "ensemble")
    cell = next(x for x in table if x.startswith(f"| {method['label']} | 2 | {source} |"))
    assert cell.count(f"/ {expected:+.2f} (") == 2  # the same margin in both sets
    same = compare.diff(rows, rows, "ensemble")
    assert all("+0.00 ± 0.00" in x for x in same[2:]) and len(same) > 2
