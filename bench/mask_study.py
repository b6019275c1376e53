"""How to turn candidates into masks: every estimator on the same decoded candidates.

The token search is the slow part and the masks are cheap, so the study separates once per
chunk with many candidates, keeps every candidate's decoded sources, and then scores each
estimator of the sources' power — and each number of candidates, as the first C of them —
on exactly the same draws: paired differences, with their standard errors, cost no extra
search.

    # 1. separate 32 valid chunks with 16 candidates, keep the candidates (CPU, 1 thread)
    .venv/bin/python bench/mask_study.py dump --bundle artifacts/default/plain --method lass \
        --sources 2 --corpus data/corpus --chunks 32 --candidates 16 --out /tmp/study/lass2
    # 2. score the estimators: margin over mixture/N, and the paired difference from the first
    .venv/bin/python bench/mask_study.py score /tmp/study/lass2

Estimators (P_i: source i's power on the STFT, masks P_i / Σ_j P_j, applied to the mixture):
"power" the mean over candidates of |X̂_ci|² (sessions 1–4), "magnitude" the squared mean
magnitude (mean_c |X̂_ci|)², "magnitude+smooth" that averaged over 5 frames (the service's
`segment_power` + `TimeSmoother`), "mean mask" the mean of each candidate's own masks,
"1.5-mean+smooth" the power mean (mean_c |X̂_ci|^1.5)^(4/3) averaged likewise. With
`--corpus`, also "static spectra": every source's mean power spectrum over 400 random 3-s
train crops, the same in every frame — Wiener filtering with no candidates at all, the
yardstick of what the candidates add.

    .venv/bin/python bench/mask_study.py score /tmp/study/mlass-pe3 --counts 16 --corpus data/corpus

"smooth b/d/o" (`--smoothing 5/5/5 15/3/15 ...`, alone: paired with the first rule): the
service's masks (prior a = 0.5) with each source's power averaged over its own window, in
frames per source (`masks.smoothing_for`: 15 for steady sources, 3 for drums):

    .venv/bin/python bench/mask_study.py score /tmp/study/mlass-pe3 --counts 16 \
        --smoothing 5/5/5 15/3/15 25/3/25

"hpss^a" (`--hpss a ...`): the service's estimator with each source's power times the mix's
percussive share (drums) or harmonic share (the others) to the power a — the service's masks'
prior (`latsep.models.separation.hpss.MaskPrior`, a = 0.5). Paired with the service's
estimator as it was before the prior:

    .venv/bin/python bench/mask_study.py score /tmp/study/mlass-pe3 --counts 16 \
        --estimators magnitude+smooth --hpss 0.25 0.5 1
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from latsep.methods import SEARCHES

N_FFT, HOP = 1024, 256
Estimator = Callable[[torch.Tensor], torch.Tensor]  # |X̂| (C, N, F, T) -> P (N, F, T)


def _masks(power: torch.Tensor) -> torch.Tensor:
    total = power.sum(0, keepdim=True)
    return torch.where(total > 1e-20, power / total.clamp(min=1e-20), 1.0 / power.shape[0])


def _smooth(power: torch.Tensor, frames: int = 5) -> torch.Tensor:
    from latsep.models.separation.masks import smooth_over_time

    return smooth_over_time(power, frames)


ESTIMATORS: dict[str, Estimator] = {
    "power": lambda mag: (mag**2).mean(0),
    "magnitude": lambda mag: mag.mean(0) ** 2,
    "magnitude+smooth": lambda mag: _smooth(mag.mean(0) ** 2),
    "mean mask": lambda mag: torch.stack([_masks(m**2) for m in mag]).mean(0),
    "1.5-mean+smooth": lambda mag: _smooth((mag**1.5).mean(0) ** (4 / 3)),
}


def train_spectra(corpus: str, sources: int, crops: int = 400, seed: int = 0) -> torch.Tensor:
    """(N, F) each source's mean power spectrum over random 3-s crops of the train split."""
    from latsep.corpus import Corpus

    audio = Corpus(corpus).split_pcm("train").pcm[:sources]
    rng = np.random.default_rng(seed)
    length = 3 * 22050
    total = torch.zeros(sources, N_FFT // 2 + 1, dtype=torch.float64)
    for start in rng.integers(0, audio.shape[1] - length, crops):
        crop = audio[:, start : start + length].astype(np.float32) / 32768.0
        total += (_stft(crop).abs() ** 2).mean(-1).double()
    return (total / crops).float()


def dump(args: argparse.Namespace) -> None:
    from latsep.bundle import load_bundle
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.config import SOURCE_SETS, Overrides, method_settings
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.separation import Separator

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    sources = SOURCE_SETS[args.sources]
    settings = method_settings(  # the bench's rules: the bundle's defaults, C candidates
        args.method,
        args.sources,
        Overrides(num_candidates=args.candidates, search=args.search),
        bundle.separation_defaults(args.method, args.sources),
    )
    separator = Separator(bundle, args.method, sources)
    chunks = evaluation_chunks(
        args.corpus, sources, split=args.split, seconds=3.0, count=args.chunks, seed=0
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(chunks):
        path = out / f"{i:03d}.npz"
        if path.exists():  # resumable
            continue
        stems = np.asarray(chunk.stems, np.float64) * 10.0 ** (args.level_db / 20.0)
        mixture = stems.sum(0)
        start = time.perf_counter()
        result = separator.separate(mixture, settings, seed=chunk_seed(0, chunk))
        seconds = time.perf_counter() - start
        candidates = [
            separator.candidate_stems(result, c, mixture, masks=False)
            for c in range(args.candidates)
        ]
        np.savez(path, candidates=np.stack(candidates).astype(np.float32), references=stems)
        print(f"{i + 1}/{len(chunks)} {chunk.song_id}@{chunk.start}: {seconds:.1f} s", flush=True)


def _stft(x: np.ndarray) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    return torch.stft(
        torch.as_tensor(x, dtype=torch.float32),
        N_FFT,
        HOP,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


DRUMS = 1  # the source order of the dumps: bass, drums[, other]


def _chunk_scores(
    path: Path,
    counts: list[int],
    rate: int,
    spectra: torch.Tensor | None,
    hpss: list[float] = (),
    estimators: list[str] = (),
    spectral: list[float] = (),
    smoothing: list[str] = (),
) -> dict[str, np.ndarray]:
    """{"estimator C": SDR margin over mixture/N per source} for one dumped chunk."""
    from latsep.models.metrics import bss_sdr

    data = np.load(path)
    candidates, references = data["candidates"], data["references"]
    _, n, length = candidates.shape
    mixture = references.sum(0)
    spec = _stft(mixture)
    magnitude = torch.stack([_stft(c).abs() for c in candidates])  # (C, N, F, T)
    window = torch.hann_window(N_FFT)
    baseline = bss_sdr(references, np.repeat(mixture[None] / n, n, 0), rate)
    scores = {}
    for count in counts if estimators or not smoothing else ():  # --smoothing alone: its rules
        for name, estimator in ESTIMATORS.items():
            if estimators and name not in estimators:
                continue
            masks = _masks(estimator(magnitude[:count]))
            stems = torch.istft(masks * spec[None], N_FFT, HOP, window=window, length=length)
            scores[f"{name} C{count}"] = bss_sdr(references, stems.numpy(), rate) - baseline
    if hpss:  # the service's estimator times the mix's harmonic or percussive share
        from latsep.models.separation.hpss import MaskPrior
        from latsep.models.separation.masks import StftGrid

        grid = StftGrid.covering(length, rate)  # the same frames as _stft: centred, zeros
        percussive = [i == DRUMS for i in range(n)]
        for exponent in hpss:
            weights = MaskPrior(mixture, grid, percussive, exponent).weights(0, grid.frames)
            for count in counts:
                masks = _masks(ESTIMATORS["magnitude+smooth"](magnitude[:count]) * weights)
                stems = torch.istft(masks * spec[None], N_FFT, HOP, window=window, length=length)
                margin = bss_sdr(references, stems.numpy(), rate) - baseline
                scores[f"hpss^{exponent:g} C{count}"] = margin
                for power in spectral if spectra is not None else ():
                    share = spectra[:n] / spectra[:n].sum(0, keepdim=True)
                    masks = _masks(
                        ESTIMATORS["magnitude+smooth"](magnitude[:count])
                        * weights
                        * share[:, :, None] ** power
                    )
                    stems = torch.istft(
                        masks * spec[None], N_FFT, HOP, window=window, length=length
                    )
                    margin = bss_sdr(references, stems.numpy(), rate) - baseline
                    scores[f"hpss^{exponent:g}+spectra^{power:g} C{count}"] = margin
    if smoothing:  # the service's masks (prior a = 0.5) with each source's own time average
        from latsep.models.separation.hpss import MASK_EXPONENT, MaskPrior
        from latsep.models.separation.masks import StftGrid, smooth_over_time

        grid = StftGrid.covering(length, rate)
        percussive = [i == DRUMS for i in range(n)]
        weights = MaskPrior(mixture, grid, percussive, MASK_EXPONENT).weights(0, grid.frames)
        for count in counts:
            power = magnitude[:count].mean(0) ** 2
            for rule in smoothing:  # "15/3/15": frames for bass / drums [/ other]
                windows = [int(w) for w in rule.split("/")]
                masks = _masks(smooth_over_time(power, windows) * weights)
                stems = torch.istft(masks * spec[None], N_FFT, HOP, window=window, length=length)
                margin = bss_sdr(references, stems.numpy(), rate) - baseline
                scores[f"smooth {rule} C{count}"] = margin
    if spectra is not None:  # no candidates: the same spectrum in every frame
        power = spectra[:n, :, None].expand(n, spectra.shape[1], spec.shape[-1])
        stems = torch.istft(_masks(power) * spec[None], N_FFT, HOP, window=window, length=length)
        scores["static spectra"] = bss_sdr(references, stems.numpy(), rate) - baseline
    return scores


def score(args: argparse.Namespace) -> None:
    files = sorted(Path(args.dir).glob("*.npz"))
    if not files:
        sys.exit(f"no dumped chunks in {args.dir}")
    rows: dict[str, list[np.ndarray]] = {}
    sources = np.load(files[0])["references"].shape[0]
    spectra = train_spectra(args.corpus, sources) if args.corpus else None
    for path in files:
        scores = _chunk_scores(
            path,
            args.counts,
            args.rate,
            spectra,
            args.hpss,
            args.estimators,
            args.spectral,
            args.smoothing,
        )
        for key, margin in scores.items():
            rows.setdefault(key, []).append(margin)
    first_key = next(iter(rows))
    if args.smoothing and not args.estimators:  # paired with the first rule
        first_key = next(k for k in rows if k.startswith("smooth "))
    first = np.array(rows[first_key])
    print(f"{args.dir}: {len(files)} chunks; SDR margin over mixture/N per source, mean;")
    print(f"paired difference from '{first_key}' ± standard error")
    for key, values in rows.items():
        margin = np.array(values)
        difference = margin - first
        se = np.nanstd(difference, 0, ddof=1) / math.sqrt(len(difference))
        cells = " ".join(f"{m:+.2f}" for m in np.nanmean(margin, 0))
        means = np.nanmean(difference, 0)
        diffs = " ".join(f"{d:+.2f} ± {s:.2f}" for d, s in zip(means, se, strict=True))
        print(f"{key:24s} {cells}   | {diffs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser("dump", help="separate chunks and keep every candidate")
    d.add_argument("--bundle", required=True)
    d.add_argument("--method", required=True)
    d.add_argument("--sources", type=int, default=2)
    d.add_argument("--corpus", required=True)
    d.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    d.add_argument("--chunks", type=int, default=32)
    d.add_argument("--candidates", type=int, default=16)
    d.add_argument("--level-db", type=float, default=0.0)
    d.add_argument("--search", choices=SEARCHES, default=None, help="default: the bundle's")
    d.add_argument("--threads", type=int, default=1)
    d.add_argument("--out", required=True)
    s = commands.add_parser("score", help="score every estimator on the dumped candidates")
    s.add_argument("dir")
    s.add_argument("--counts", type=int, nargs="+", default=[4, 8, 16])
    s.add_argument("--rate", type=int, default=22050)
    s.add_argument("--corpus", help="also score static train-split spectra (no candidates)")
    s.add_argument(
        "--estimators",
        nargs="*",
        choices=list(ESTIMATORS),
        default=[],
        help="score only these (the first is the one the others pair with)",
    )
    s.add_argument(
        "--hpss", type=float, nargs="*", default=[],
        help="also the service's masks with each source's power times the mix's harmonic "
        "share (percussive for drums) to these exponents",
    )  # fmt: skip
    s.add_argument(
        "--smoothing", nargs="*", default=[],
        help="also the service's masks (prior a = 0.5) with each source's power averaged "
        "over its own window: frames per source, e.g. 5/5/5 15/3/15 (bass/drums/other)",
    )  # fmt: skip
    s.add_argument(
        "--spectral", type=float, nargs="*", default=[],
        help="with --hpss and --corpus: also each source's share of the train split's mean "
        "power spectrum to these exponents, on top of the masks' prior",
    )  # fmt: skip
    args = parser.parse_args()
    dump(args) if args.command == "dump" else score(args)


if __name__ == "__main__":
    main()
