"""Learning-rate schedules that finish inside their budget.

A run ends at whichever comes first, its step count or its wall-time budget. A cosine
spread over the step count alone never decays when the budget binds (the priors stopped at
200–440 of 4,000 steps with the LR still at 0.98× peak), so the schedule is driven by the
share of the run that is spent: the larger of steps done / steps and seconds spent / budget.
"""

from __future__ import annotations

import math


def run_share(step: int, total_steps: int, elapsed_seconds: float, budget_seconds: float) -> float:
    """How much of the run is spent, in [0, 1]: by steps or by wall time, whichever is ahead."""
    by_steps = step / max(1, total_steps)
    by_time = elapsed_seconds / budget_seconds if math.isfinite(budget_seconds) else 0.0
    return min(1.0, max(by_steps, by_time))


def warmup_cosine(
    peak: float, step: int, warmup_steps: int, share: float, floor: float = 0.1
) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from `peak` to `floor`·peak as the
    run's share goes from 0 to 1 (reaching the floor exactly when the run ends)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    share = min(max(share, 0.0), 1.0)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * share)))
