"""KV-cache buffer reuse (the BufferPool, parents shared with children) never corrupts a
live state: priming or stepping a state whose next positions a child already claimed reads
only its own prefix, and leaves the child intact."""

from __future__ import annotations

import torch
from prior_support import full_log_probs, make_prior


def test_prime_from_a_state_whose_next_position_a_child_claimed() -> None:
    """The prime copies the parent's prefix (BOS and history) before writing after it; it
    used to copy no position and attend to stale pool buffers (NaN)."""
    prior = make_prior()
    parent = prior.advance(prior.initial_state(1), torch.tensor([4]))
    # Churn the pool so that stale data sits in the free buffers.
    for _ in range(3):
        prior.select(parent, torch.tensor([0, 0]))
    child = prior.advance(parent, torch.tensor([1]))  # claims position parent.length
    primed = prior.prime(parent, torch.tensor([[7, 2, 9]]))
    expected = full_log_probs(prior, torch.tensor([[4, 7, 2, 9]]))
    assert torch.allclose(prior.log_probs(primed), expected, atol=1e-5)
    # The child still owns its cache: stepping it again is exact.
    grandchild = prior.advance(child, torch.tensor([3]))
    assert torch.allclose(
        prior.log_probs(grandchild), full_log_probs(prior, torch.tensor([[4, 1, 3]])), atol=1e-5
    )


def test_prime_of_two_rows_after_select_and_a_claimed_position() -> None:
    """The same on a reordered batch: every row's own prefix, nothing of another row's."""
    prior = make_prior()
    torch.manual_seed(5)
    tokens = torch.randint(0, 11, (2, 4))
    state = prior.initial_state(2)
    for t in range(4):
        state = prior.advance(state, tokens[:, t])
    state = prior.select(state, torch.tensor([1, 0]))
    tokens = tokens[[1, 0]]
    prior.advance(state, torch.tensor([0, 0]))  # a child claims the next position
    prefix = torch.tensor([[5, 6], [8, 1]])
    primed = prior.prime(state, prefix)
    expected = full_log_probs(prior, torch.cat([tokens, prefix], 1))
    assert torch.allclose(prior.log_probs(primed), expected, atol=1e-5)


def test_step_cached_equals_module_forward_after_slide_and_select() -> None:
    prior = make_prior(context=8)
    torch.manual_seed(3)
    tokens = torch.randint(0, 11, (2, 20))
    state = prior.initial_state(2)
    for t in range(20):
        state = prior.advance(state, tokens[:, t])
        if t % 3 == 0:
            state = prior.select(state, torch.tensor([1, 0]))
            tokens = tokens[[1, 0]]
    expected = full_log_probs(prior, state.history)
    assert torch.allclose(prior.log_probs(state), expected, atol=1e-5)
