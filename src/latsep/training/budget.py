"""The bookkeeping every training loop shares: a wall-time budget that totals over
resumptions, a checkpoint every N steps and at the budget's end, and a final checkpoint
that does not validate the same step twice."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from latsep.training.checkpoint import RunState


def budget_seconds(minutes: float | None) -> float:
    return math.inf if minutes is None else 60.0 * minutes


def budget_spent(state: RunState, seconds: float) -> bool:
    return state.elapsed_seconds >= seconds


class BudgetedRun:
    """Create it right before the training loop: time spent earlier (loading data) is not
    charged to the budget."""

    def __init__(self, state: RunState, seconds: float, checkpoint_every: int) -> None:
        self.state = state
        self.seconds = seconds
        self.checkpoint_every = checkpoint_every
        self._started = time.monotonic() - state.elapsed_seconds

    def after_step(self, checkpoint: Callable[[], None]) -> bool:
        """Record the elapsed time; checkpoint (validate and save) every `checkpoint_every`
        steps and when the budget runs out. True: out of time, stop (resumably)."""
        self.state.elapsed_seconds = time.monotonic() - self._started
        out_of_time = budget_spent(self.state, self.seconds)
        if self.state.step % self.checkpoint_every == 0 or out_of_time:
            checkpoint()
        return out_of_time

    def finish(self, checkpoint: Callable[[], None], save: Callable[[], None]) -> None:
        """All steps done: mark finished and save, validating unless this step already was."""
        self.state.finished = True
        history = self.state.history
        if history and history[-1]["step"] == self.state.step:
            save()
        else:
            checkpoint()
