"""Peak memory and time of one separation against the duration of a stereo 44.1 kHz upload.

Each duration runs in a fresh process (peak RSS is per process: `ru_maxrss`) through the
worker's pipeline (`latsep.worker.pipeline.run`, what `latsep separate` and the RQ job run):
decode the upload, mono 22,050 Hz, token search, decode every candidate, masks, stems at
44.1 kHz stereo. The mix is synthetic (tones and noise bursts, seeded): memory and time do
not depend on the music.

    # the README's figures, with the defaults (the 10-minute case took 21 min on 2 cores)
    .venv/bin/python bench/memory.py --bundle artifacts/default --seconds 60 180 600
    # memory only, in minutes: the token search replaced by random tokens (the priors work
    # in windows of their context, so the search's memory does not grow with duration)
    .venv/bin/python bench/memory.py --fake-search --seconds 10 20 40 60 180

Prints one JSON line per duration (seconds, peak_rss_mb, baseline_rss_mb after loading the
bundles, wall_s, separate_s) and a linear fit peak_rss_mb ≈ a + b · minutes over them (its
slope is the growth per minute; its extrapolations are labelled as such).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_mix(path: Path, seconds: float, rate: int, seed: int = 0) -> None:
    """A stereo float WAV, written 10 s at a time (the bench's own arrays stay small): a
    bass line, a noise-burst pattern and a pad, panned apart."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, 2, subtype="FLOAT") as out:
        for start in range(0, total, 10 * rate):
            t = np.arange(start, min(total, start + 10 * rate)) / rate
            bass = 0.25 * np.sin(2 * np.pi * 55 * t * (1 + 0.5 * (np.floor(t * 2) % 2)))
            drums = 0.2 * np.exp(-((t * 4) % 1.0) * 12) * rng.standard_normal(t.size)
            pad = 0.1 * np.sin(2 * np.pi * 330 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t))
            left, right = bass + 0.8 * drums + 0.3 * pad, bass + 0.5 * drums + 0.7 * pad
            out.write(np.stack([left, right], 1).astype(np.float32))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _fake_search(num_tokens: int):
    """A stand-in for `engine.separate`: random tokens of the right shape, instantly."""
    import torch

    from latsep.models.separation.result import Separation

    def separate(method, priors, likelihood, mixture_tokens, **kw):
        c, n, t = kw["num_candidates"], len(priors), int(mixture_tokens.shape[0])
        g = kw["generator"]
        return Separation(
            tokens=torch.randint(0, num_tokens, (c, n, t), generator=g),
            log_scores=torch.zeros(c, dtype=torch.float64),
            fallback_steps=torch.zeros(c, dtype=torch.long),
            origins=torch.arange(c),
        )

    return separate


def one(args: argparse.Namespace) -> dict:
    """Run one duration in this process; returns its figures."""
    import torch

    from latsep.jobs import SeparationOptions
    from latsep.models.separation import pipeline as waveform
    from latsep.settings import expand_bundle_paths
    from latsep.worker import pipeline
    from latsep.worker.routing import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.load(expand_bundle_paths([Path(p) for p in args.bundle]), device="cpu")
    sources = args.sources.split(",") if args.sources else None
    if args.fake_search:
        bundle = engine.route(args.method, sources or engine.default_sources(args.method))
        waveform.separate = _fake_search(int(bundle.bundle.codec.num_tokens))  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.wav"
        _write_mix(path, args.one, 44100)
        baseline = _peak_mb()
        start = time.perf_counter()
        options = SeparationOptions(num_candidates=args.num_candidates, seed=0)
        outcome = pipeline.run(engine, args.method, sources, path, options)
        wall = time.perf_counter() - start
    stems = next(iter(outcome.stems.values()))
    return {
        "seconds": args.one,
        "peak_rss_mb": round(_peak_mb(), 1),
        "baseline_rss_mb": round(baseline, 1),
        "wall_s": round(wall, 2),
        "separate_s": outcome.result.timings.get("separate_s"),
        "stem_shape": list(stems.shape),
        "sample_rate": outcome.result.sample_rate,
        "num_candidates": outcome.result.options.num_candidates if outcome.result.options else None,
        "fake_search": args.fake_search,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=None, help="bundle dir (repeatable)")
    parser.add_argument("--method", default="mlass-pe")
    parser.add_argument("--sources", default=None, help="default: the method's default sources")
    parser.add_argument("--num-candidates", type=int, default=None, help="default: the bundle's")
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 180.0, 600.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fake-search", action="store_true", help="random tokens, no priors")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.bundle = args.bundle or ["artifacts/default"]
    if args.one is not None:
        print(json.dumps(one(args)))
        return
    rows = []
    for seconds in args.seconds:
        command = [sys.executable, __file__, "--one", str(seconds), "--method", args.method]
        command += ["--threads", str(args.threads)]
        for bundle in args.bundle:
            command += ["--bundle", bundle]
        if args.sources:
            command += ["--sources", args.sources]
        if args.num_candidates:
            command += ["--num-candidates", str(args.num_candidates)]
        if args.fake_search:
            command.append("--fake-search")
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) >= 2:
        minutes = np.array([r["seconds"] / 60 for r in rows])
        peak = np.array([r["peak_rss_mb"] for r in rows])
        slope, intercept = np.polyfit(minutes, peak, 1)
        fit = {"fit": "peak_rss_mb ≈ a + b·minutes", "a": round(intercept, 1), "b": round(slope, 1)}
        fit["extrapolated_mb"] = {m: round(intercept + slope * m, 1) for m in (1, 3, 10)}
        print(json.dumps(fit, ensure_ascii=False))


if __name__ == "__main__":
    main()
