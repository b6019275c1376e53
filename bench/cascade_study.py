"""Three sources as "other" first, then a two-source method on the rest: is the pair model's
strength usable when a third source is present?

Reads the candidates `bench/mask_study.py dump` kept for a three-source method (bass, drums,
other), takes "other" from their ensemble masks (the service's estimator), subtracts it from
the mixture and separates the rest into bass and drums with a two-source method; beside it,
the same with the *true* "other" removed (an oracle: what the cascade would give if the
first stage were perfect). SDR margins over mixture/3, paired with the three-source
ensemble, mean ± standard error (CPU, one thread).

    .venv/bin/python bench/cascade_study.py /tmp/study/mlass-pe3 --bundle artifacts/default/plain
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from mask_study import ESTIMATORS, HOP, N_FFT, _masks, _stft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="a mask_study dump of a three-source method")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--method", default="lass", help="the two-source method of stage two")
    parser.add_argument("--candidates", type=int, default=16, help="first-stage candidates used")
    parser.add_argument("--chunks", type=int, default=32)
    args = parser.parse_args()

    from latsep.bundle import load_bundle
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.models.metrics import bss_sdr
    from latsep.models.separation import Separator

    torch.set_num_threads(1)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    settings = method_settings(
        args.method, 2, Overrides(), bundle.separation_defaults(args.method, 2)
    )
    pair = Separator(bundle, args.method, ("bass", "drums"))
    window = torch.hann_window(N_FFT)
    files = sorted(Path(args.dir).glob("*.npz"))[: args.chunks]
    if not files:
        sys.exit(f"no dumped chunks in {args.dir}")
    rows: dict[str, list[np.ndarray]] = {"three-source ensemble": [], "cascade": [], "oracle": []}
    for i, path in enumerate(files):
        data = np.load(path)
        candidates, references = data["candidates"][: args.candidates], data["references"]
        n, length = references.shape
        mixture = references.sum(0)
        magnitude = torch.stack([_stft(c).abs() for c in candidates])
        masks = _masks(ESTIMATORS["magnitude+smooth"](magnitude))
        stems = torch.istft(masks * _stft(mixture)[None], N_FFT, HOP, window=window, length=length)
        ensemble = stems.numpy()
        baseline = bss_sdr(references, np.repeat(mixture[None] / n, n, 0), 22050)
        rows["three-source ensemble"].append(bss_sdr(references, ensemble, 22050) - baseline)
        for key, other in (("cascade", ensemble[2]), ("oracle", references[2])):
            rest = pair.separate(mixture - other, settings, seed=1000 + i)
            estimate = np.stack([rest.stems[0], rest.stems[1], other])
            rows[key].append(bss_sdr(references, estimate, 22050) - baseline)
        print(f"{i + 1}/{len(files)}", flush=True)
    first = np.array(rows["three-source ensemble"])
    print(f"{args.dir}: {len(files)} chunks; SDR margin over mixture/3 (bass drums other), mean;")
    print("paired difference from the three-source ensemble ± standard error")
    for key, values in rows.items():
        margin = np.array(values)
        difference = margin - first
        se = np.nanstd(difference, 0, ddof=1) / math.sqrt(len(difference))
        cells = " ".join(f"{m:+.2f}" for m in np.nanmean(margin, 0))
        diffs = " ".join(
            f"{d:+.2f} ± {s:.2f}" for d, s in zip(np.nanmean(difference, 0), se, strict=True)
        )
        print(f"{key:24s} {cells}   | {diffs}")


if __name__ == "__main__":
    main()
