"""Count a bundle's likelihood tables over many random crops with random stem gains."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from latsep.models.codec import Codec
from latsep.models.separation.chunks import bf16_is_fast
from latsep.training.config import CountsConfig
from latsep.training.counts import EDGE_TOKENS, TableCounter, TablePlan, encode_crops
from latsep.training.data import StemStore

COO = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CountResult:
    tables: dict[str, list[COO]]  # name → levels of (indices (3, nnz), counts (nnz,))
    coverage: dict[str, Any]  # name → per-level fraction of valid triples seen in train
    triples: int  # train triples counted per table level
    gaussian_sigma: float | None  # LQ-VAE σ fitted on the pair tables (when asked)
    linear_agreement: float | None  # fraction of counted triples with y == S(z1, z2)


def build_counts(
    codec: Codec,
    train: StemStore,
    valid: StemStore,
    plan: TablePlan,
    settings: CountsConfig,
    *,
    seed: int,
    device: torch.device,
    fit_sigma: bool = False,
    progress: bool = True,
    initial: dict[str, list[COO]] | None = None,
) -> CountResult:
    """Count `settings.crops` random train crops (plus `initial`, counts made earlier with the
    same codec, e.g. a shipped bundle's tables); coverage of valid triples by the total."""
    if train.stems != plan.sources or valid.stems != plan.sources:
        raise ValueError("stores must hold exactly the plan's sources, in order")
    codec.eval()
    length = max(1, round(settings.crop_seconds * codec.sample_rate / codec.hop_length))
    length *= codec.hop_length
    counted = _count(codec, train, plan, settings, settings.crops, length, seed, device, progress)
    if initial is not None:
        counted.absorb(initial)
    held_out = _count(
        codec, valid, plan, settings, settings.valid_crops, length, seed + 1, device, False
    )
    coverage = {}
    seen = counted.counters()
    for name, levels in held_out.counters().items():
        figures = [
            level.coverage(train_level)
            for level, train_level in zip(levels, seen[name], strict=False)
        ]
        coverage[name] = figures[0] if len(figures) == 1 else figures
    tables = counted.tables()
    first_pair = next(iter(counted.pairs.values()))
    sigma = agreement = None
    if fit_sigma:
        sigma, agreement = fit_gaussian_sigma(
            codec, [tables[name][0] for name in tables if name.startswith("lass:")]
        )
    return CountResult(tables, coverage, first_pair.total, sigma, agreement)


def _count(codec, store, plan, settings, crops, length, seed, device, progress) -> TableCounter:
    counter = TableCounter(plan, codec.num_tokens)
    bf16 = settings.bf16 and bf16_is_fast(device)
    rng = np.random.default_rng(seed)
    batches = math.ceil(crops / settings.batch_size)
    for index in tqdm(range(batches), desc="counts", disable=not progress):
        size = min(settings.batch_size, crops - index * settings.batch_size)
        audio = torch.from_numpy(store.crops(rng, size, length, settings.gain_db)).to(device)
        counter.add(*encode_crops(codec, audio, plan, bf16=bf16))
    return counter


@torch.inference_mode()
def fit_gaussian_sigma(codec: Codec, pair_tables: list[COO]) -> tuple[float, float]:
    """σ of LQ-VAE's likelihood −‖e[y] − e[S(z1, z2)]‖²/2σ²: the isotropic ML fit
    σ² = E‖e[y] − e[S]‖² / D over counted triples; also P(y == S)."""
    codebook = codec.codebook.double().cpu()  # (K, D)
    total = squared = agree = 0.0
    for indices, counts in pair_tables:
        z1, z2, y = (torch.from_numpy(row) for row in indices)
        weights = torch.from_numpy(counts).double()
        midpoint = 0.5 * (codebook[z1] + codebook[z2])
        nearest = codec.quantizer.nearest(midpoint.float().to(codec.device)).cpu()
        distance = (codebook[y] - codebook[nearest]).pow(2).sum(1)
        total += float(weights.sum())
        squared += float((weights * distance).sum())
        agree += float(weights[nearest == y].sum())
    if total == 0:
        raise ValueError("no triples to fit sigma on")
    variance = squared / (total * codebook.shape[1])
    floor = 1e-3 * float(codebook.pow(2).sum(1).mean().sqrt()) + 1e-6
    return max(math.sqrt(variance), floor), agree / total


@torch.inference_mode()
def fit_latent_sigma(
    codec: Codec,
    store: StemStore,
    *,
    crops: int = 128,
    crop_seconds: float = 2.0,
    gain_db: tuple[float, float] = (-6.0, 6.0),
    seed: int = 0,
    batch_size: int = 16,
) -> float:
    """σ of lqvae's continuous likelihood −‖m − ½(e_a + e_b)‖²/2σ² (`LatentGaussianLikelihood`):
    the isotropic ML fit σ² = E‖m − ½(e_a + e_b)‖² / D over random crops of a two-stem store,
    m the encoder's latent of the crop's mean, a and b the tokens of its stems (the edges,
    where zero padding shapes the latents, left out as in the counts)."""
    if len(store.stems) != 2:
        raise ValueError(f"the latent σ is fitted on two stems; the store has {store.stems}")
    codec.eval()
    length = max(1, round(crop_seconds * codec.sample_rate / codec.hop_length)) * codec.hop_length
    codebook = codec.codebook.double()
    rng = np.random.default_rng(seed)
    squared = values = 0.0
    for start in range(0, crops, batch_size):
        size = min(batch_size, crops - start)
        audio = torch.from_numpy(store.crops(rng, size, length, gain_db)).to(codec.device)
        a, b = codec.encode(audio[:, 0]), codec.encode(audio[:, 1])  # (B, T)
        latent = codec.embed(0.5 * (audio[:, 0] + audio[:, 1])).double().transpose(1, 2)
        residual = latent - 0.5 * (codebook[a] + codebook[b])  # (B, T, D)
        t = residual.shape[1]
        if t > 4 * EDGE_TOKENS:
            residual = residual[:, EDGE_TOKENS : t - EDGE_TOKENS]
        squared += float(residual.pow(2).sum())
        values += residual.numel()
    return math.sqrt(squared / values)
