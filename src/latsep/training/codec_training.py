"""Train the codec (plain or LQ) on stem crops; resumable; validated on the valid split."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from latsep.models.codec import (
    Codec,
    CodecConfig,
    linearization_loss,
    multi_resolution_stft_loss,
    normalized_l2,
)
from latsep.models.metrics import bss_sdr, si_sdr, snr
from latsep.training.budget import BudgetedRun, budget_seconds, budget_spent
from latsep.training.checkpoint import RunState, load_checkpoint, save_checkpoint
from latsep.training.config import CodecTraining, PipelineConfig
from latsep.training.data import StemStore
from latsep.training.schedule import run_share, warmup_cosine

log = logging.getLogger(__name__)
VALID_SEED = 12345


@dataclass(frozen=True)
class CodecRun:
    codec: Codec  # eval mode
    state: RunState
    quality: dict[str, Any]


def codec_run_dir(run_root: Path, kind: str) -> Path:
    return run_root / f"codec-{kind}"


def train_codec(
    config: PipelineConfig,
    kind: str,
    corpus: str | Path,
    run_root: Path,
    *,
    device: torch.device,
    progress: bool = True,
    train_store: StemStore | None = None,
    valid_store: StemStore | None = None,
) -> CodecRun:
    """Train (or resume, or just load when finished) the `kind` codec of `config`."""
    settings = config.codec_training
    run_dir = codec_run_dir(run_root, kind)
    torch.manual_seed(config.seed)
    codec = Codec(config.codec).to(device)
    optimizer = torch.optim.Adam(codec.parameters(), lr=settings.learning_rate)
    state = load_checkpoint(run_dir, codec, optimizer)
    if state is None:
        state = RunState()
        if kind == "lq" and settings.lq_init_from_plain:
            _warm_start_from_plain(codec, run_root, state)
    budget = budget_seconds(settings.budget_minutes(kind))
    if state.finished or budget_spent(state, budget):
        # Done, or its wall-time budget (total over resumptions) is spent: use as is.
        codec.eval()
        return CodecRun(codec, state, state.extra.get("quality", {}))
    train = (train_store or StemStore(corpus, "train", settings.stems)).subset(settings.stems)
    valid = (valid_store or StemStore(corpus, "valid", settings.stems)).subset(settings.stems)
    lq_weight = settings.lq_weight if kind == "lq" else 0.0
    length = _crop_length(settings.crop_seconds, config.codec)
    bar = tqdm(total=settings.steps, initial=state.step, desc=f"codec-{kind}", disable=not progress)

    def checkpoint() -> None:
        _validate_and_save(codec, valid, config, kind, state, optimizer, run_dir, device)
        codec.train()

    run = BudgetedRun(state, budget, settings.checkpoint_every)
    codec.train()
    out_of_time = False
    while state.step < settings.steps:
        # Data depends on (seed, step) only, so a resumed run sees the same stream.
        rng = np.random.default_rng([config.seed, 1 + (kind == "lq"), state.step])
        crops = torch.from_numpy(
            train.crops(rng, settings.batch_size, length, settings.gain_db)
        ).to(device)
        # Cosine to 10 % by the end of the steps or the budget: a constant LR never settles.
        share = run_share(state.step, settings.steps, state.elapsed_seconds, budget)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(settings.learning_rate, state.step, 0, share)
        losses = codec_step(codec, crops, settings, lq_weight, rng)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        optimizer.step()
        state.step += 1
        bar.update(1)
        bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in losses.items()})
        out_of_time = run.after_step(checkpoint)
        if out_of_time:
            log.info("codec-%s: wall-time budget reached at step %d", kind, state.step)
            break
    bar.close()
    if not out_of_time:
        run.finish(checkpoint, lambda: save_checkpoint(run_dir, codec, optimizer, state))
    codec.eval()
    return CodecRun(codec, state, state.extra.get("quality", {}))


def _warm_start_from_plain(codec: Codec, run_root: Path, state: RunState) -> None:
    """Copy the plain codec's weights (not its optimizer) into a fresh LQ run, if any."""
    plain_dir = codec_run_dir(run_root, "plain")
    plain_state = load_checkpoint(plain_dir, codec, None)
    if plain_state is None:
        log.info("codec-lq: no plain checkpoint in %s; training from scratch", plain_dir)
        return
    state.extra["init_from"] = {"kind": "plain", "step": plain_state.step}
    log.info("codec-lq: starting from the plain codec at step %d", plain_state.step)


def codec_step(
    codec: Codec,
    crops: torch.Tensor,
    settings: CodecTraining,
    lq_weight: float,
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """Losses of one batch of crops (B, N, L). Plain: one random stem per crop. LQ: the
    first half of the batch become pairs (a, b) plus their mean, for the linearization loss."""
    b, n, _ = crops.shape
    rows = torch.arange(b, device=crops.device)
    first = torch.from_numpy(rng.integers(0, n, size=b)).to(crops.device)
    audio = crops[rows, first]  # (B, L)
    num_pairs = b // 2 if lq_weight > 0 and n > 1 else 0
    if num_pairs:
        shift = torch.from_numpy(rng.integers(1, n, size=num_pairs)).to(crops.device)
        second = (first[:num_pairs] + shift) % n  # a different stem of the same crop
        other = crops[rows[:num_pairs], second]
        audio = torch.cat([audio, other, 0.5 * (audio[:num_pairs] + other)])  # (B + 2P, L)
    out = codec(audio, bf16=settings.bf16)
    reconstruction = normalized_l2(audio, out.reconstruction)
    spectral = multi_resolution_stft_loss(audio, out.reconstruction, settings.stft_resolutions)
    total = reconstruction + settings.stft_weight * spectral
    total = total + settings.commitment_weight * out.commitment_loss
    losses = {"l2": reconstruction, "stft": spectral, "commit": out.commitment_loss}
    if num_pairs:
        latent_a = out.latent[:num_pairs]
        latent_b = out.latent[b : b + num_pairs]
        latent_mix = out.latent[b + num_pairs :]
        lin = linearization_loss(codec.quantizer, latent_a, latent_b, latent_mix)
        total = total + lq_weight * lin
        losses["lin"] = lin
    losses["total"] = total
    return losses


def _validate_and_save(
    codec: Codec,
    valid: StemStore,
    config: PipelineConfig,
    kind: str,
    state: RunState,
    optimizer: torch.optim.Optimizer,
    run_dir: Path,
    device: torch.device,
) -> None:
    quality = evaluate_codec(codec, valid, config.codec_training, device, lq=kind == "lq")
    quality["step"] = state.step
    state.history.append(quality)
    state.extra["quality"] = quality
    log.info("codec-%s step %d: %s", kind, state.step, _summary(quality))
    save_checkpoint(run_dir, codec, optimizer, state)


@torch.inference_mode()
def evaluate_codec(
    codec: Codec, valid: StemStore, settings: CodecTraining, device: torch.device, *, lq: bool
) -> dict[str, Any]:
    """Reconstruction SDR (BSSEval v4), SI-SDR and SNR per stem on fixed valid crops."""
    codec.eval()
    rng = np.random.default_rng(VALID_SEED)
    length = _crop_length(settings.valid_seconds, codec.config)
    crops = valid.crops(rng, settings.valid_crops, length)  # (C, N, L), corpus levels
    figures: dict[str, Any] = {"sdr": {}, "si_sdr": {}, "snr": {}}
    all_codes = []
    for n, stem in enumerate(valid.stems):
        audio = torch.from_numpy(crops[:, n]).to(device)  # (C, L)
        tokens = codec.encode(audio)
        all_codes.append(tokens.flatten())
        decoded = codec.decode(tokens)[:, :length].cpu().numpy()
        reference = crops[:, n]
        # One long signal per stem, so BSSEval's median runs over all 1 s frames.
        sdr = bss_sdr(reference.reshape(1, -1), decoded.reshape(1, -1), codec.sample_rate)
        figures["sdr"][stem] = _round(sdr[0])
        active = np.abs(reference).max(axis=1) > 1e-4
        figures["si_sdr"][stem] = _round(np.mean(si_sdr(reference[active], decoded[active])))
        figures["snr"][stem] = _round(np.mean(snr(reference[active], decoded[active])))
    figures["codes_used"] = int(torch.unique(torch.cat(all_codes)).numel())
    if lq and len(valid.stems) > 1:
        figures["linear_agreement"] = _round(_linear_agreement(codec, crops, device))
    return figures


def _linear_agreement(codec: Codec, crops: np.ndarray, device: torch.device) -> float:
    """Fraction of frames where q(½e_a + ½e_b) equals q(enc(mean(a, b))), first two stems."""
    a = torch.from_numpy(crops[:, 0]).to(device)
    b = torch.from_numpy(crops[:, 1]).to(device)
    q = codec.quantizer
    midpoint = 0.5 * (q.lookup(codec.encode(a)) + q.lookup(codec.encode(b)))
    predicted = q.quantize_codes(midpoint)
    return float((predicted == codec.encode(0.5 * (a + b))).float().mean())


def _crop_length(seconds: float, codec: CodecConfig) -> int:
    frames = max(1, round(seconds * codec.sample_rate / codec.hop_length))
    return frames * codec.hop_length


def _round(value: float) -> float | None:
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None  # JSON has no NaN


def _summary(quality: dict[str, Any]) -> str:
    sdr = ", ".join(f"{k} {v}" for k, v in quality["sdr"].items())
    return f"SDR dB [{sdr}], codes used {quality['codes_used']}"
