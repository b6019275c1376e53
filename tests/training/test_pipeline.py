"""The `tiny` pipeline end to end: corpus → codecs → priors → counts → bundles, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latsep.bundle import load_bundles
from latsep.cli import main
from latsep.models.separation.views import ViewFilter
from latsep.training import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tiny-run")
    args = ["train", "bundle", "--config", "tiny", "--corpus", str(tiny_corpus)]
    args += ["--run-dir", str(work / "run"), "--out", str(work / "out"), "--no-progress"]
    args += ["--threads", "1"]
    assert main(args) == 0
    return work


def test_tiny_pipeline_serves_all_five_methods(trained: Path) -> None:
    by_method = load_bundles(trained / "out", device="cpu")
    assert set(by_method) == {"lass", "lqvae", "hybrid", "mlass-bp", "mlass-pe"}
    plain = by_method["lass"]
    assert plain.sources == ("bass", "drums", "other")
    assert plain.max_sources("mlass-bp") == 3
    k = plain.num_tokens
    tokens = plain.codec.encode(torch.zeros(1, 320))
    assert tokens.shape == (1, 20) and int(tokens.max()) < k
    # Every method builds its likelihood from the stored tables.
    for method, bundle in by_method.items():
        for sources in bundle.source_sets(method):
            assert bundle.likelihood(method, sources).num_tokens == k
    # The config's band view, counted for the three sources: every (source, token) of the
    # count crops against the view's token (crops × trimmed steps × 3 sources).
    (view,) = plain.views("mlass-pe", ("bass", "drums", "other"))
    assert view.name == "low" and plain.views("mlass-pe", ("bass", "drums")) == ()
    counts = load_config("tiny").counts
    steps = round(counts.crop_seconds * plain.sample_rate / plain.hop_length) - 4
    total = int(plain.raw_tables["view-low:bass+drums+other"][0][1].sum())
    assert total == counts.crops * steps * 3
    prior = plain.prior("drums")
    state = prior.advance(prior.initial_state(2), torch.tensor([0, 1]))
    assert torch.allclose(prior.log_probs(state).exp().sum(-1), torch.ones(2), atol=1e-5)


def test_manifest_has_provenance_and_quality(trained: Path) -> None:
    manifest = json.loads((trained / "out" / "plain" / "manifest.json").read_text())
    provenance = manifest["provenance"]
    assert provenance["config_name"] == "tiny"
    assert len(provenance["corpus_index_sha256"]) == 64
    assert provenance["codec_steps"] == load_config("tiny").codec_training.steps
    assert set(provenance["prior_steps"]) == {"bass", "drums", "other"}
    quality = manifest["quality"]
    assert set(quality["codec"]["sdr"]) == {"bass", "drums", "other"}
    for figures in quality["priors"].values():
        assert np.isfinite(figures["nll_bits_per_token"])
        assert figures["nll_bits_per_token"] <= np.log2(16) + 1
    coverage = quality["counts"]["valid_coverage"]["lass:bass+drums"]
    # Shares of the valid triples the train counts have seen (exact figures on a known
    # counter: tests/training/test_counts.py); with 16 codes the train crops see some of them:
    # 0 would mean the valid and train counters never met (wrong keys, nothing counted).
    assert set(coverage) == {"weighted", "distinct"}
    assert 0.0 < coverage["distinct"] <= 1.0 and 0.0 < coverage["weighted"] <= 1.0
    lq = json.loads((trained / "out" / "lq" / "manifest.json").read_text())
    assert lq["likelihood"]["gaussian_sigma"] > 0
    assert "linear_agreement" in lq["quality"]["codec"]


def test_rerun_resumes_without_training_again(trained: Path, tiny_corpus: Path) -> None:
    before = (trained / "run" / "codec-plain" / "model.safetensors").read_bytes()
    args = ["train", "codec", "--config", "tiny", "--corpus", str(tiny_corpus)]
    args += ["--run-dir", str(trained / "run"), "--kind", "plain", "--no-progress"]
    assert main(args) == 0
    assert (trained / "run" / "codec-plain" / "model.safetensors").read_bytes() == before


def test_codec_training_resumes_from_a_checkpoint(tiny_corpus: Path, tmp_path: Path) -> None:
    # Stop after 10 steps by giving fewer steps, then extend the run to 20: the second
    # call continues from step 10 instead of starting over.
    import dataclasses

    from latsep.training.codec_training import train_codec

    config = load_config("tiny")

    def with_steps(n: int):
        return dataclasses.replace(
            config, codec_training=dataclasses.replace(config.codec_training, steps=n)
        )

    first = train_codec(with_steps(10), "plain", tiny_corpus, tmp_path, device=torch.device("cpu"),
                        progress=False)  # fmt: skip
    assert first.state.step == 10 and first.state.finished
    state_path = tmp_path / "codec-plain" / "state.json"
    state = json.loads(state_path.read_text())
    state["finished"] = False
    state_path.write_text(json.dumps(state))
    second = train_codec(with_steps(20), "plain", tiny_corpus, tmp_path, device=torch.device("cpu"),
                         progress=False)  # fmt: skip
    assert second.state.step == 20
    assert [h["step"] for h in second.state.history] == [10, 20]


def test_caches_follow_the_codec_checkpoint(
    trained: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    # Pretend the plain codec was trained further: counts must be recounted, token
    # streams re-encoded, and a prior trained on the old tokens refused, not mixed.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    state_path = run / "codec-plain" / "state.json"
    state = json.loads(state_path.read_text())
    state["step"] += 1
    state_path.write_text(json.dumps(state))
    common = ["--config", "tiny", "--corpus", str(tiny_corpus), "--run-dir", str(run)]
    common += ["--no-progress", "--threads", "1"]
    assert main(["train", "counts", "--bundle", "plain", *common]) == 0
    counted = json.loads((run / "counts-plain" / "result.json").read_text())
    assert counted["codec"] == f"plain@{state['step']}"
    with pytest.raises(RuntimeError, match="delete"):
        main(["train", "prior", "--kind", "plain", "--source", "bass", *common])
    from latsep.training.tokens import streams_codec

    assert streams_codec(run / "tokens-plain" / "bass.safetensors") == f"plain@{state['step']}"


def test_lq_codec_starts_from_the_plain_codec(tiny_corpus: Path, tmp_path: Path) -> None:
    # With lq_init_from_plain the LQ run's first step starts from the plain weights: after
    # 0 steps of LQ training (steps=0 finishes at once) the two codecs are identical.
    import dataclasses

    from latsep.training.codec_training import train_codec

    config = load_config("tiny")

    def settings(n: int, warm: bool, lq_minutes: float | None = None):
        training = dataclasses.replace(
            config.codec_training, steps=n, lq_init_from_plain=warm, lq_max_minutes=lq_minutes
        )
        return dataclasses.replace(config, codec_training=training)

    cpu = torch.device("cpu")
    plain = train_codec(
        settings(5, True), "plain", tiny_corpus, tmp_path, device=cpu, progress=False
    )
    warm = train_codec(settings(0, True), "lq", tiny_corpus, tmp_path, device=cpu, progress=False)
    assert warm.state.extra["init_from"] == {"kind": "plain", "step": 5}
    for name, value in plain.codec.state_dict().items():
        assert torch.equal(value, warm.codec.state_dict()[name]), name
    cold = train_codec(settings(0, False), "lq", tiny_corpus, tmp_path / "cold", device=cpu,
                       progress=False)  # fmt: skip
    assert "init_from" not in cold.state.extra
    differs = [not torch.equal(v, cold.codec.state_dict()[k]) for k, v in
               plain.codec.state_dict().items() if v.is_floating_point()]  # fmt: skip
    assert any(differs)


def test_lq_budget_is_separate_from_the_plain_budget() -> None:
    from latsep.training.config import CodecTraining

    training = CodecTraining(max_minutes=30.0, lq_max_minutes=10.0)
    assert training.budget_minutes("plain") == 30.0
    assert training.budget_minutes("lq") == 10.0
    assert CodecTraining(max_minutes=30.0).budget_minutes("lq") == 30.0


def test_warm_start_continues_priors_and_adds_counts(trained: Path) -> None:
    """`--init-from`: the bundle's codec as is, priors from its weights, counts accumulated."""
    from latsep.training.checkpoint import read_state

    shipped = trained / "out" / "plain"
    args = ["train", "bundle", "--config", "tiny", "--bundle", "plain", "--no-progress"]
    corpus = json.loads((shipped / "manifest.json").read_text())["provenance"]["corpus"]
    args += ["--corpus", corpus]
    args += ["--run-dir", str(trained / "warm-run"), "--out", str(trained / "warm-out")]
    args += ["--init-from", str(shipped), "--threads", "1"]
    assert main(args) == 0
    before = load_bundles(trained / "out", device="cpu")["lass"]
    after = load_bundles(trained / "warm-out", device="cpu")["lass"]
    # The codec is the shipped one (no codec training: its tokens stay those of the tables).
    for (name, old), new in zip(
        before.codec.state_dict().items(), after.codec.state_dict().values(), strict=True
    ):
        assert torch.equal(old, new), name
    assert not (trained / "warm-run" / "codec-plain").exists()
    # Each prior started from the shipped weights and trained on.
    state = read_state(trained / "warm-run" / "prior-plain-bass")
    assert state is not None and state.extra["init_from"].startswith(str(shipped))
    assert state.step == load_config("tiny").prior_training.steps
    # Counts: the shipped table's triples plus the new crops' triples, per (a, b, y).
    old_i, old_c = before.raw_tables["lass:bass+drums"][0]
    new_i, new_c = after.raw_tables["lass:bass+drums"][0]
    assert int(new_c.sum()) > int(old_c.sum())
    k = before.num_tokens

    def by_key(indices: torch.Tensor, counts: torch.Tensor) -> dict[int, int]:
        keys = (indices[0] * k + indices[1]) * k + indices[2]
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))

    old_counts, new_counts = by_key(old_i, old_c), by_key(new_i, new_c)
    assert all(new_counts.get(key, 0) >= count for key, count in old_counts.items())
    # the band view's counts accumulate the same way
    view = "view-low:bass+drums+other"
    old_view, new_view = before.raw_tables[view][0], after.raw_tables[view][0]
    assert int(new_view[1].sum()) == 2 * int(old_view[1].sum())  # as many new crops again
    old_counts, new_counts = by_key(*old_view), by_key(*new_view)
    assert all(new_counts.get(key, 0) >= count for key, count in old_counts.items())
    provenance = json.loads((trained / "warm-out" / "plain" / "manifest.json").read_text())
    assert provenance["provenance"]["init_from"]["plain"].startswith(str(shipped))


def test_warm_start_with_no_new_crops_keeps_the_bundles_counts(trained: Path) -> None:
    shipped = trained / "out" / "plain"
    corpus = json.loads((shipped / "manifest.json").read_text())["provenance"]["corpus"]
    args = ["train", "counts", "--config", "tiny", "--bundle", "plain", "--no-progress"]
    args += ["--corpus", corpus, "--run-dir", str(trained / "keep-run"), "--threads", "1"]
    assert main([*args, "--count-crops", "0"]) == 2  # 0 crops only on top of a bundle
    assert main([*args, "--count-crops", "0", "--init-from", str(shipped)]) == 0
    from latsep.training.pipeline import _load_counts

    bundle = load_bundles(trained / "out", device="cpu")["lass"]
    run = trained / "keep-run" / "counts-plain"
    meta = json.loads((run / "result.json").read_text())
    kept = _load_counts(run, meta["codec"])
    assert kept is not None
    assert set(kept.tables) == {n for n in bundle.raw_tables if not n.startswith("view-")}
    for name, levels in kept.tables.items():  # band views are counted as the bundle is written
        for (indices, counts), (kept_i, kept_c) in zip(
            bundle.raw_tables[name], levels, strict=True
        ):
            assert np.array_equal(indices.numpy(), kept_i) and np.array_equal(
                counts.numpy(), kept_c
            )


def test_views_are_added_to_a_bundle_from_the_command_line(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "plain"
    shutil.copytree(trained / "out" / "plain", copy)
    corpus = json.loads((copy / "manifest.json").read_text())["provenance"]["corpus"]
    args = ["bundle", "add-views", str(copy), "--corpus", corpus, "--crops", "16"]
    assert main([*args, "--view", "high", "highpass", "3000", "0.5"]) == 0
    bundle = load_bundles(tmp_path, device="cpu")["mlass-pe"]
    views = {v.name: v for v in bundle.views("mlass-pe", ("bass", "drums", "other"))}
    assert set(views) == {"low", "high"} and views["high"].weight == 0.5
    assert main([*args, "--view", "high", "highpass", "3000", "mlass-bp=0.7"]) == 0
    bundle = load_bundles(tmp_path, device="cpu")["mlass-pe"]
    assert [v.name for v in bundle.views("mlass-pe", ("bass", "drums", "other"))] == ["low"]
    views = {v.name: v for v in bundle.views("mlass-bp", ("bass", "drums", "other"))}
    assert views["high"].weight == 0.7
    # sources in another order are counted in the bundle's: one table, the view applied once
    assert main([*args, "--sources", "other,drums,bass", "--view", "mid", "bandpass",
                 "200,3000", "1"]) == 0  # fmt: skip
    bundle = load_bundles(tmp_path, device="cpu")["mlass-pe"]
    assert "view-mid:bass+drums+other" in bundle.raw_tables
    assert [v.name for v in bundle.views("mlass-bp", bundle.sources)].count("mid") == 1
    assert main([*args, "--view", "perc", "percussive:full", "-", "mlass-bp=0.5"]) == 0
    bundle = load_bundles(tmp_path, device="cpu")["mlass-pe"]
    (perc,) = [v for v in bundle.views("mlass-bp", bundle.sources) if v.name == "perc"]
    assert perc.filter == ViewFilter("full", (), part="percussive")
    assert main([*args, "--view", "bad", "bandpass", "300", "1"]) == 2  # one cutoff: refused
    assert main([*args, "--view", "bad", "steady:full", "-", "1"]) == 2  # no such part
    assert main([*args, "--sources", "bass,drums", "--view", "x", "lowpass", "200", "1"]) == 2
