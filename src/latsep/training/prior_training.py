"""Train one source's TransformerPrior on its token streams (codec frozen); resumable."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from latsep.models.prior.transformer import PriorConfig, TransformerPrior
from latsep.training.budget import BudgetedRun, budget_seconds, budget_spent
from latsep.training.checkpoint import RunState, load_checkpoint, save_checkpoint
from latsep.training.config import PriorTraining
from latsep.training.schedule import run_share, warmup_cosine
from latsep.training.tokens import TokenStreams, sample_windows

log = logging.getLogger(__name__)
VALID_SEED = 54321


@dataclass(frozen=True)
class PriorRun:
    prior: TransformerPrior  # eval mode
    state: RunState
    quality: dict[str, Any]


def train_prior(
    prior_config: PriorConfig,
    settings: PriorTraining,
    streams: dict[str, TokenStreams],
    run_dir: Path,
    *,
    seed: int,
    device: torch.device,
    progress: bool = True,
    name: str = "prior",
    tokens_from: str | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    init_from: str | None = None,
) -> PriorRun:
    """Train (resume, or load when finished) a prior on streams["train"]; NLL on "valid".

    `tokens_from` identifies the codec checkpoint that made the streams; a run started on
    another codec's tokens is refused rather than silently mixed. `init_weights` (a state
    dict, e.g. a shipped bundle's prior, named by `init_from`) starts a new run from those
    weights instead of from scratch; a run that has a checkpoint resumes from it instead.
    """
    torch.manual_seed(seed)
    prior = TransformerPrior(prior_config).to(device)
    optimizer = torch.optim.AdamW(
        prior.parameters(), lr=settings.learning_rate, betas=(0.9, 0.95), weight_decay=0.01
    )
    state = load_checkpoint(run_dir, prior, optimizer)
    if state is None:
        state = RunState(extra={"tokens_from": tokens_from})
        if init_weights is not None:
            prior.load_state_dict({k: v.float() for k, v in init_weights.items()})
            state.extra["init_from"] = init_from
    recorded = state.extra.get("tokens_from")
    if tokens_from is not None and recorded is not None and recorded != tokens_from:
        raise RuntimeError(
            f"{run_dir} was trained on tokens of codec {recorded}, the codec is now "
            f"{tokens_from}; delete {run_dir} to retrain the prior on the new codec"
        )
    budget = budget_seconds(settings.max_minutes)
    if state.finished or budget_spent(state, budget):
        prior.eval()
        return PriorRun(prior, state, state.extra.get("quality", {}))
    train_songs = streams["train"].songs()
    valid_songs = streams["valid"].songs()
    length = window_length(prior_config, train_songs + valid_songs)
    bar = tqdm(total=settings.steps, initial=state.step, desc=name, disable=not progress)

    def checkpoint() -> None:
        _validate_and_save(prior, valid_songs, settings, length, state, optimizer, run_dir)
        prior.train()

    run = BudgetedRun(state, budget, settings.checkpoint_every)
    prior.train()
    out_of_time = False
    while state.step < settings.steps:
        rng = np.random.default_rng([seed, state.step])
        windows = sample_windows(train_songs, rng, settings.batch_size, length).to(device)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(settings, state.step, state.elapsed_seconds, budget)
        loss = prior.loss(windows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        optimizer.step()
        state.step += 1
        bar.update(1)
        bar.set_postfix(bits=f"{float(loss.detach()) / math.log(2):.3f}")
        out_of_time = run.after_step(checkpoint)
        if out_of_time:
            log.info("%s: wall-time budget reached at step %d", name, state.step)
            break
    bar.close()
    if not out_of_time:
        run.finish(checkpoint, lambda: save_checkpoint(run_dir, prior, optimizer, state))
    prior.eval()
    return PriorRun(prior, state, state.extra.get("quality", {}))


def window_length(config: PriorConfig, songs: list[torch.Tensor]) -> int:
    """Training windows fill the context (BOS + context − 1 inputs predict `context` tokens),
    unless every song is shorter."""
    longest = max((s.shape[0] for s in songs), default=0)
    return max(2, min(config.context, longest))


@torch.inference_mode()
def evaluate_prior(
    prior: TransformerPrior, songs: list[torch.Tensor], settings: PriorTraining, length: int
) -> dict[str, Any]:
    """Mean next-token NLL (bits/token) on fixed valid windows; also the unigram entropy."""
    prior.eval()
    rng = np.random.default_rng(VALID_SEED)
    windows = sample_windows(songs, rng, settings.valid_windows, length).to(prior.device)
    nats = []
    for batch in windows.split(16):
        nats.append(-prior.sequence_log_probs(batch).mean().item())
    counts = torch.bincount(torch.cat(songs), minlength=prior.num_tokens).double()
    p = counts[counts > 0] / counts.sum()
    return {
        "nll_bits_per_token": round(float(np.mean(nats)) / math.log(2), 4),
        "unigram_entropy_bits": round(float(-(p * p.log2()).sum()), 4),
        "window_tokens": length,
    }


def _validate_and_save(prior, valid_songs, settings, length, state, optimizer, run_dir) -> None:
    quality = evaluate_prior(prior, valid_songs, settings, length)
    quality["step"] = state.step
    state.history.append(quality)
    state.extra["quality"] = quality
    log.info("prior step %d: %s", state.step, quality)
    save_checkpoint(run_dir, prior, optimizer, state)


def _learning_rate(settings: PriorTraining, step: int, elapsed: float, budget: float) -> float:
    """Linear warm-up, then cosine decay to 10 % by the end of the steps or of the budget."""
    share = run_share(step, settings.steps, elapsed, budget)
    return warmup_cosine(settings.learning_rate, step, settings.warmup_steps, share)
