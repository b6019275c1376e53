"""sdr.png (mean SDR per method and source, with ceiling and baseline marks) and
spectrogram.png (one chunk: mixture, true stems, one method's stems). Agg backend, small."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latsep.evaluation.cases import BASELINE, CEILING, METHOD

_DPI = 72


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean(row: dict[str, Any], source: str, metric: str) -> float:
    value = row["aggregate"]["scores"].get(source, {}).get(metric, {}).get("mean")
    return np.nan if value is None else float(value)


def sdr_plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One panel per source count; per method a bar per source (ensemble Wiener, what the
    service returns by default), a dash for chosen + Wiener, a dot for the oracle, a black
    tick at its codec's ceiling and a grey tick at the baseline."""
    plt = _pyplot()
    counts = sorted({len(r["sources"]) for r in rows if r["kind"] == METHOD})
    fig, axes = plt.subplots(1, max(1, len(counts)), figsize=(5 * max(1, len(counts)), 3.6))
    axes = np.atleast_1d(axes)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, n in zip(axes, counts, strict=False):
        methods = [r for r in rows if r["kind"] == METHOD and len(r["sources"]) == n]
        sources = sorted(methods[0]["sources"], key=list(methods[0]["sources"]).index)
        ceilings = {r["bundle"]: r for r in rows if r["kind"] == CEILING and len(r["sources"]) == n}
        baseline = next((r for r in rows if r["kind"] == BASELINE and len(r["sources"]) == n), None)
        width = 0.8 / len(sources)
        for j, source in enumerate(sources):
            x = np.arange(len(methods)) + (j - (len(sources) - 1) / 2) * width
            ax.bar(
                x,
                [_mean(r, source, "sdr_ensemble") for r in methods],
                width,
                color=colors[j % len(colors)],
                label=source,
            )
            ax.plot(
                x,
                [_mean(r, source, "sdr_wiener") for r in methods],
                "_",
                color="black",
                markersize=6,
                label="chosen + Wiener" if j == 0 else None,
            )
            ax.plot(
                x,
                [_mean(r, source, "sdr_oracle") for r in methods],
                "o",
                color="white",
                markeredgecolor="black",
                markersize=4,
                label="oracle (best of N, refs)" if j == 0 else None,
            )
            ceiling = [_mean(ceilings[r["bundle"]], source, "sdr") for r in methods]
            ax.hlines(
                ceiling,
                x - width / 2,
                x + width / 2,
                colors="black",
                label="codec ceiling" if j == 0 else None,
            )
            if baseline is not None:
                level = [_mean(baseline, source, "sdr")] * len(methods)
                ax.hlines(
                    level,
                    x - width / 2,
                    x + width / 2,
                    colors="grey",
                    linestyles="dashed",
                    label="baseline mixture / N" if j == 0 else None,
                )
        ax.set_xticks(np.arange(len(methods)), [r["label"] for r in methods])
        ax.set_title(f"{n} sources: mean SDR (ensemble Wiener, the default)")
        ax.set_ylabel("SDR (dB)")
        ax.axhline(0.0, color="black", linewidth=0.5)
    # One legend under the panels, from the panel with the most sources (it has every entry).
    handles, labels = axes[len(counts) - 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _log_spectrogram(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """|STFT| in dB, (F, frames), Hann window."""
    window = np.hanning(n_fft)
    frames = max(1, 1 + (len(audio) - n_fft) // hop)
    padded = np.zeros((frames - 1) * hop + n_fft)
    padded[: min(len(audio), padded.size)] = audio[: padded.size]
    stack = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(frames)])
    magnitude = np.abs(np.fft.rfft(stack, axis=1)).T  # (F, frames)
    return 20 * np.log10(magnitude + 1e-6)


def spectrogram_plot(
    mixture: np.ndarray,
    stems: np.ndarray,
    estimates: np.ndarray,
    sources: Sequence[str],
    sample_rate: int,
    title: str,
    path: Path,
) -> None:
    """Mixture on top; true stems (left) next to estimated stems (right). stems, estimates
    (N, L)."""
    plt = _pyplot()
    n = len(sources)
    fig, axes = plt.subplots(n + 1, 2, figsize=(7, 1.3 * (n + 1)), sharex=True, sharey=True)
    seconds = len(mixture) / sample_rate
    extent = (0.0, seconds, 0.0, sample_rate / 2000)
    reference = _log_spectrogram(mixture)
    top = float(reference.max())
    panels = [("mixture", mixture, 0, 0)]
    for i, source in enumerate(sources):
        panels += [
            (f"true {source}", stems[i], i + 1, 0),
            (f"estimated {source}", estimates[i], i + 1, 1),
        ]
    for label, audio, r, c in panels:
        axes[r, c].imshow(
            _log_spectrogram(audio),
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=top - 80,
            vmax=top,
            cmap="magma",
        )
        axes[r, c].set_title(label, fontsize=8)
    axes[0, 1].axis("off")
    axes[0, 1].text(0.0, 0.5, title, fontsize=8, wrap=True, transform=axes[0, 1].transAxes)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
