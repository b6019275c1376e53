"""Learning-rate schedules driven by the share of the run spent (steps or wall time)."""

from __future__ import annotations

import itertools
import math

import pytest

from latsep.training.schedule import run_share, warmup_cosine


def test_share_follows_whichever_of_steps_and_time_is_ahead() -> None:
    assert run_share(100, 4000, 30.0, 60.0) == pytest.approx(0.5)  # the budget binds
    assert run_share(3000, 4000, 6.0, 60.0) == pytest.approx(0.75)  # the steps bind
    assert run_share(10, 4000, 1e9, math.inf) == pytest.approx(10 / 4000)  # no budget
    assert run_share(5000, 4000, 0.0, 60.0) == 1.0


def test_warmup_then_cosine_reaches_the_floor_exactly_at_the_end() -> None:
    peak = 1e-3
    assert warmup_cosine(peak, 0, 10, 0.0) == pytest.approx(peak / 10)
    assert warmup_cosine(peak, 9, 10, 0.0) == pytest.approx(peak)
    assert warmup_cosine(peak, 10, 10, 0.0) == pytest.approx(peak)
    assert warmup_cosine(peak, 50, 10, 0.5) == pytest.approx(peak * 0.55)
    assert warmup_cosine(peak, 50, 10, 1.0) == pytest.approx(peak * 0.1)
    values = [warmup_cosine(peak, 20, 10, s / 10) for s in range(11)]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_a_budget_bound_prior_run_decays_its_learning_rate() -> None:
    """The old schedule spread the cosine over 4,000 steps: at step 300 of a run whose
    budget was spent it still sat at 0.98 × peak. Now the budget's end is the schedule's."""
    from latsep.training.config import PriorTraining
    from latsep.training.prior_training import _learning_rate

    settings = PriorTraining(steps=4000, learning_rate=1e-3, warmup_steps=50)
    assert _learning_rate(settings, 300, 419.0, 420.0) < 0.11e-3
    assert _learning_rate(settings, 300, 0.0, math.inf) > 0.95e-3
