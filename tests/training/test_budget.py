"""The shared training-loop bookkeeping: checkpoint cadence, budget end, final save."""

from __future__ import annotations

import math

from latsep.training.budget import BudgetedRun, budget_seconds
from latsep.training.checkpoint import RunState


def test_checkpoints_every_n_steps_and_never_runs_out_without_a_budget() -> None:
    state = RunState()
    run = BudgetedRun(state, budget_seconds(None), checkpoint_every=3)
    saved = []
    for _ in range(7):
        state.step += 1
        assert not run.after_step(lambda: saved.append(state.step))
    assert saved == [3, 6] and state.elapsed_seconds > 0 and math.isinf(run.seconds)


def test_a_spent_budget_checkpoints_and_stops() -> None:
    state = RunState(step=4, elapsed_seconds=120.0)  # resumed with 2 of its 2 minutes spent
    run = BudgetedRun(state, budget_seconds(2.0), checkpoint_every=100)
    saved = []
    state.step += 1
    assert run.after_step(lambda: saved.append(state.step))
    assert saved == [5] and state.elapsed_seconds >= 120.0


def test_finish_validates_only_a_step_not_validated_yet() -> None:
    calls = []
    validated = RunState(step=10, history=[{"step": 10}])
    BudgetedRun(validated, math.inf, 5).finish(lambda: calls.append("v"), lambda: calls.append("s"))
    fresh = RunState(step=12, history=[{"step": 10}])
    BudgetedRun(fresh, math.inf, 5).finish(lambda: calls.append("v"), lambda: calls.append("s"))
    assert calls == ["s", "v"] and validated.finished and fresh.finished
