"""The worker's separation pipeline on the toy engine: shapes, mixture consistency,
determinism, scores against references, routing and refusals."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from worker_support import ToyBundle, mixture, toy_engine

from latsep.audio import UndecodableAudio
from latsep.jobs import SEED_MAX, SeparationOptions
from latsep.models.metrics import bss_sdr
from latsep.models.separation import Separator
from latsep.worker import pipeline
from latsep.worker.routing import Engine, LoadedBundle, UnservableRequest

SHORT = 0.25  # seconds: ~345 tokens of the tiny codec, a second or two of sampling


def wav(audio: np.ndarray, rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def options(**kw) -> SeparationOptions:
    return SeparationOptions(**{"num_candidates": 2, "seed": 3, **kw})


def test_wiener_stems_sum_to_the_upload_and_seed_fixes_them(engine: Engine) -> None:
    bass, drums = mixture(SHORT)
    upload = wav(bass + drums)
    seen = []
    first = pipeline.run(
        engine, "lass", None, upload, options(), progress=lambda f, s: seen.append(f)
    )
    second = pipeline.run(engine, "lass", ["bass", "drums"], upload, options())
    assert list(first.stems) == ["bass", "drums"]
    total = first.stems["bass"] + first.stems["drums"]
    np.testing.assert_allclose(total, bass + drums, atol=1e-5)
    for source in first.stems:
        np.testing.assert_array_equal(first.stems[source], second.stems[source])
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert first.result.sdr is None and first.result.oracle is None
    assert len(first.result.candidate_consistency) == 2
    assert first.result.num_samples == len(bass)


def test_consistency_none_returns_the_raw_decoded_sources(engine: Engine) -> None:
    bass, drums = mixture(SHORT)
    raw = pipeline.run(engine, "lass", None, wav(bass + drums), options(consistency="none"))
    total = raw.stems["bass"] + raw.stems["drums"]
    # An untrained codec reconstructs nothing like the mixture: the raw sum is far from it.
    assert np.abs(total - (bass + drums)).max() > 1e-2


@pytest.mark.parametrize("consistency", ["wiener", "ensemble"])
@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 2), (16000, 1), (44100, 3)])
def test_stems_come_back_as_the_user_gave_the_mix(
    engine: Engine, rate: int, channels: int, consistency: str
) -> None:
    """The models hear mono at 22,050 Hz; the stems keep the upload's rate and channels
    and sum to it, channel by channel (float WAV in, float32 stems out)."""
    rng = np.random.default_rng(rate + channels)
    bass, drums = mixture(SHORT, rate=rate)
    upload = np.stack([(bass + drums) * g for g in rng.uniform(0.3, 1.0, channels)], 1)
    upload[:, -1] += 0.05 * rng.standard_normal(len(bass)).astype(np.float32)  # not all alike
    buffer = io.BytesIO()
    sf.write(buffer, upload, rate, format="WAV", subtype="FLOAT")
    out = pipeline.run(
        engine, "mlass-pe", None, buffer.getvalue(), options(consistency=consistency)
    )
    assert out.result.sample_rate == rate and out.result.channels == channels
    assert out.result.model_sample_rate == 22050
    assert out.result.num_samples == len(bass)
    want = (len(bass), channels) if channels > 1 else (len(bass),)
    assert all(stem.shape == want for stem in out.stems.values())
    total = out.stems["bass"] + out.stems["drums"]
    np.testing.assert_allclose(total, upload if channels > 1 else upload[:, 0], atol=2e-5)
    # the channels differ, and so do their stems
    assert channels == 1 or not np.allclose(out.stems["bass"][:, 0], out.stems["bass"][:, -1])


def test_consistency_none_resamples_the_raw_sources_onto_every_channel(engine: Engine) -> None:
    bass, drums = mixture(SHORT, rate=44100)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([bass + drums, bass - drums], 1), 44100, format="FLAC")
    out = pipeline.run(engine, "mlass-pe", None, buffer.getvalue(), options(consistency="none"))
    assert out.result.sample_rate == 44100 and out.stems["bass"].shape == (len(bass), 2)
    np.testing.assert_array_equal(out.stems["bass"][:, 0], out.stems["bass"][:, 1])


@pytest.mark.parametrize(("method", "consistency"), [("mlass-pe", "wiener"), ("lass", "ensemble")])
def test_scores_with_references_match_museval(
    engine: Engine, method: str, consistency: str
) -> None:
    """SDR is museval's on the returned stems, which sum to the upload; with "wiener" they
    are the chosen candidate's, so an oracle that is the chosen one scores the same."""
    bass, drums = mixture(1.0)  # museval frames are 1 s long
    out = pipeline.run(
        engine,
        method,
        None,
        wav(bass + drums),
        options(consistency=consistency),
        references={"bass": wav(bass), "drums": wav(drums)},
    )
    assert out.result.options is not None and out.result.options.consistency == consistency
    np.testing.assert_allclose(out.stems["bass"] + out.stems["drums"], bass + drums, atol=1e-5)
    expected = bss_sdr(
        np.stack([bass, drums]), np.stack([out.stems["bass"], out.stems["drums"]]), 22050
    )
    assert out.result.sdr == pytest.approx({"bass": expected[0], "drums": expected[1]})
    assert set(out.result.si_sdr or {}) == {"bass", "drums"}
    # The oracle, rebuilt outside the worker from the same draw: the candidate the references
    # rank best by SI-SDR, scored on its own Wiener stems.
    from latsep.models.metrics import si_sdr

    oracle, used = out.result.oracle, out.result.options
    assert oracle is not None
    separator = Separator(engine.route(method, ["bass", "drums"]).bundle, method, ["bass", "drums"])
    refs = np.stack([bass, drums])
    again = separator.separate(
        bass + drums,
        used.search_settings(),
        seed=used.seed,
        consistency=used.consistency,
        references=refs,
    )
    assert again.chosen == out.result.chosen_candidate
    assert again.oracle_si_sdr is not None and len(again.oracle_si_sdr) == 2
    assert oracle.index == int(np.argmax(again.oracle_si_sdr))
    own = separator.candidate_stems(again, oracle.index, bass + drums, masks=True)
    want = si_sdr(refs, own)
    assert oracle.si_sdr == pytest.approx({"bass": want[0], "drums": want[1]}, abs=1e-3)


def test_references_must_cover_every_source(engine: Engine) -> None:
    bass, drums = mixture(SHORT)
    with pytest.raises(ValueError, match="missing drums"):
        pipeline.run(
            engine, "lass", None, wav(bass + drums), options(), references={"bass": wav(bass)}
        )


def test_bad_audio_raises_typed_errors(engine: Engine) -> None:
    with pytest.raises(UndecodableAudio):
        pipeline.run(engine, "lass", None, b"garbage" * 100, options())


def test_routing_picks_the_bundle_that_serves_the_request() -> None:
    two = LoadedBundle("two", Path("two"), ToyBundle())
    three = LoadedBundle("three", Path("three"), ToyBundle(("bass", "drums", "piano")))
    engine = Engine([two, three], "cpu")
    assert engine.route("lass", ["bass", "drums"]).name == "two"
    assert engine.route("mlass-bp", ["bass", "drums", "piano"]).name == "three"
    assert engine.route("lass", ["drums", "bass"]).name == "two"
    assert engine.route("lass", ["bass", "piano"]).name == "three"
    with pytest.raises(UnservableRequest, match="the loaded bundles serve two: bass,drums"):
        engine.route("lass", ["bass", "guitar"])
    with pytest.raises(UnservableRequest, match="cannot separate bass, drums, piano with lass"):
        engine.route("lass", ["bass", "drums", "piano"])
    with pytest.raises(UnservableRequest, match="no loaded bundle serves method 'lqvae'"):
        engine.route("lqvae", ["bass", "drums"])
    caps = {b.name: b for b in engine.capabilities()}
    assert caps["three"].max_sources["mlass-bp"] == 3 and caps["two"].max_sources["lass"] == 2


def separation_of(chosen, oracle_index, tokens=None, raw_stems=None):
    """A WaveformSeparation with what the oracle reads (the rest empty)."""
    from latsep.models.separation import WaveformSeparation

    empty = np.zeros(0)
    return WaveformSeparation(
        stems=empty,
        raw_stems=empty if raw_stems is None else raw_stems,
        chosen=chosen,
        candidate_consistency=empty,
        oracle_index=oracle_index,
        oracle_si_sdr=None,
        tokens=tokens,
        log_scores=torch.zeros(0),
        fallback_steps=torch.zeros(0),
    )


def test_default_sources_take_bass_drums_else_refuse_ambiguity() -> None:
    engine = toy_engine(sources=("bass", "drums", "piano"))
    assert engine.default_sources("mlass-bp") == ["bass", "drums", "piano"]
    assert engine.default_sources("lass") == ["bass", "drums"]  # the documented pair
    engine = toy_engine(sources=("bass", "piano", "voice"))
    with pytest.raises(UnservableRequest, match="choose `sources` for lass among"):
        engine.default_sources("lass")


def test_the_oracle_candidate_is_decoded_and_scored_like_the_returned_stems() -> None:
    """When the references prefer another candidate than the most consistent one, its stems
    are rebuilt from its tokens with the same consistency step before scoring."""
    from latsep.models.metrics import si_sdr
    from latsep.models.separation import wiener_stems
    from latsep.models.separation.masks import smoothing_for

    bundle = ToyBundle()
    bass, drums = mixture(1.0)
    mix = bass + drums
    refs = np.stack([bass, drums])  # (N, L)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(
        0, bundle.num_tokens, (3, 2, -(-len(mix) // bundle.hop_length)), generator=generator
    )
    with torch.inference_mode():
        decoded = bundle.codec.decode(tokens[2]).numpy()[:, : len(mix)]  # (N, L)
    # the same masks' prior and time averages as the service's: drums hold the mix's onsets
    expected = wiener_stems(
        mix.astype(np.float64),
        decoded.astype(np.float64),
        percussive=(False, True),
        smoothing=smoothing_for((False, True)),
    )
    separation = separation_of(chosen=0, oracle_index=2, tokens=tokens)
    chosen_stems = np.zeros_like(refs)
    oracle = pipeline._oracle(
        separation,
        Separator(bundle, "lass", ["bass", "drums"]),
        mix,
        refs,
        chosen_stems,
        options().resolve({}, 2),
        ["bass", "drums"],
    )
    assert oracle is not None and oracle.index == 2
    want = si_sdr(refs, expected)
    assert oracle.si_sdr == pytest.approx({"bass": want[0], "drums": want[1]}, abs=1e-3)


def test_ensemble_oracle_is_the_chosen_candidate_with_its_own_masks() -> None:
    """consistency=ensemble: the returned stems mix every candidate's masks, so an oracle
    that is the chosen candidate is scored on that candidate's own Wiener stems, not on them."""
    from latsep.models.metrics import si_sdr
    from latsep.models.separation import wiener_stems
    from latsep.models.separation.masks import smoothing_for

    bundle = ToyBundle()
    bass, drums = mixture(0.5)
    mix = bass + drums
    refs = np.stack([bass, drums])
    raw = np.stack([0.9 * bass + 0.1 * drums, 0.8 * drums]).astype(np.float32)  # (N, L)
    separation = separation_of(chosen=1, oracle_index=1, raw_stems=raw)
    ensemble_stems = np.zeros_like(refs)  # what the oracle must not be scored on
    oracle = pipeline._oracle(
        separation,
        Separator(bundle, "lass", ["bass", "drums"]),
        mix,
        refs,
        ensemble_stems,
        options(consistency="ensemble").resolve({}, 2),
        ["bass", "drums"],
    )
    own = wiener_stems(
        mix.astype(np.float64),
        raw.astype(np.float64),
        percussive=(False, True),
        smoothing=smoothing_for((False, True)),
    )
    want = si_sdr(refs, own)
    assert oracle is not None and oracle.index == 1
    assert oracle.si_sdr == pytest.approx({"bass": want[0], "drums": want[1]}, abs=1e-3)


def test_the_oracle_decodes_on_the_codecs_device() -> None:
    """Tokens live on the CPU; a GPU codec must get them on its device (here a stand-in
    device: the decoder refuses tokens elsewhere)."""

    class DeviceCodec:
        device = "meta"

        def decode(self, tokens: torch.Tensor) -> torch.Tensor:
            assert tokens.device.type == "meta", tokens.device
            return torch.zeros(tokens.shape[0], tokens.shape[1] * 4)

    bass, drums = mixture(0.1)
    mix = bass + drums
    tokens = torch.zeros(2, 2, -(-len(mix) // 4), dtype=torch.long)
    separation = separation_of(chosen=0, oracle_index=1, tokens=tokens)
    bundle = ToyBundle()
    bundle.codec = DeviceCodec()
    oracle = pipeline._oracle(
        separation,
        Separator(bundle, "lass", ["bass", "drums"]),
        mix,
        np.stack([bass, drums]),
        np.zeros((2, len(mix)), np.float32),
        options().resolve({}, 2),
        ["bass", "drums"],
    )
    assert oracle is not None and oracle.index == 1


@pytest.mark.parametrize(
    ("method", "sources", "extreme"),
    [
        ("lass", None, {"seed": SEED_MAX}),
        ("lass", None, {"temperature": 5e-324, "likelihood_weight": 1.7e308}),
        ("lass", None, {"temperature": 1.7e308, "likelihood_weight": 5e-324}),
        ("lass", None, {"search": "beam", "top_k": 2**70}),
        ("mlass-bp", ["bass", "drums", "piano"], {"temperature": 5e-324, "top_k": 2**70}),
        ("mlass-pe", ["bass", "drums", "piano"], {"likelihood_weight": 1.7e308, "top_k": 1}),
    ],
)
def test_the_worker_runs_every_option_the_api_admits(method, sources, extreme) -> None:
    """The extremes of SeparationOptions' ranges (what the API lets through) run to the end:
    a job the API accepted must not fail on its options (issue #12.2)."""
    engine = toy_engine(sources=("bass", "drums", "piano"))
    bass, drums = mixture(0.1)
    asked = SeparationOptions(**{"num_candidates": 2, "seed": 1, **extreme})
    out = pipeline.run(engine, method, sources or ["bass", "drums"], wav(bass + drums), asked)
    assert all(np.isfinite(stem).all() for stem in out.stems.values())


def test_a_seed_beyond_64_bits_is_refused_by_the_options() -> None:
    with pytest.raises(ValueError, match="seed"):
        SeparationOptions(num_candidates=1, seed=SEED_MAX + 1)


def test_the_worker_refuses_a_decode_bomb_before_decoding(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job queued past the API's checks still cannot make the worker decode gigabytes."""
    from latsep.jobs.limits import AudioTooLarge, DecodeLimits

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite the budget")

    monkeypatch.setattr(pipeline, "load_audio", no_decoding)
    bass, drums = mixture(SHORT)
    limits = DecodeLimits(max_channels=8, max_sample_rate=192_000, max_samples=1000)
    with pytest.raises(AudioTooLarge, match="1000 samples"):
        pipeline.run(engine, "lass", None, wav(bass + drums), options(), limits=limits)
    limits = DecodeLimits(max_channels=8, max_sample_rate=16_000, max_samples=10**9)
    with pytest.raises(AudioTooLarge, match="22050 Hz"):
        pipeline.run(engine, "lass", None, wav(bass + drums), options(), limits=limits)


def test_progress_names_the_stages_with_their_counts(engine: Engine) -> None:
    bass, drums = mixture(SHORT)
    seen: list[tuple[float, str]] = []
    pipeline.run(
        engine,
        "lass",
        None,
        wav(bass + drums),
        options(),
        progress=lambda f, s: seen.append((f, s)),
    )
    fractions = [f for f, _ in seen]
    assert all(np.diff(fractions) >= 0) and fractions[-1] == 1.0
    stages = [s for _, s in seen]
    assert stages[0] == "decoding" and stages[-1] == "done"
    assert any(re.fullmatch(r"separating \d+/\d+ tokens", s) for s in stages)
    assert any(re.fullmatch(r"decoding stems \d+/\d+ blocks", s) for s in stages)
    assert any(re.fullmatch(r"masking \d+/\d+ blocks", s) for s in stages)


def test_eta_is_the_pace_so_far() -> None:
    from latsep.worker.jobs import eta

    assert eta(10.0, 0.01) is None  # too early to say
    assert eta(10.0, 0.25) == 30.0 and eta(10.0, 1.0) == 0.0
