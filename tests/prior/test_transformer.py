"""TransformerPrior: the Prior protocol, KV cache == full forward, sliding, select."""

from __future__ import annotations

import torch
from prior_support import full_log_probs, make_prior

from latsep.models.prior.protocol import Prior
from latsep.models.prior.transformer import PriorConfig, TransformerPrior


def test_implements_protocol() -> None:
    prior = make_prior()
    assert isinstance(prior, Prior)
    assert prior.num_tokens == 11
    assert prior.context == 16


def test_incremental_decoding_equals_full_forward() -> None:
    prior = make_prior()
    torch.manual_seed(1)
    tokens = torch.randint(0, 11, (3, 15))  # BOS + 15 = context 16
    full = torch.log_softmax(prior(prior.with_bos(tokens)).float(), -1)  # (B, 16, K)
    state = prior.initial_state(3)
    for t in range(15):
        step = prior.log_probs(state)
        assert torch.allclose(step, full[:, t], atol=1e-5), t
        assert torch.allclose(step.exp().sum(-1), torch.ones(3), atol=1e-5)
        state = prior.advance(state, tokens[:, t])
    assert torch.allclose(prior.log_probs(state), full[:, 15], atol=1e-5)


def test_prime_equals_stepwise() -> None:
    prior = make_prior()
    tokens = torch.randint(0, 11, (2, 9))
    stepped = prior.initial_state(2)
    for t in range(9):
        stepped = prior.advance(stepped, tokens[:, t])
    primed = prior.prime(prior.initial_state(2), tokens[:, :4])
    primed = prior.prime(primed, tokens[:, 4:])
    assert torch.allclose(prior.log_probs(primed), prior.log_probs(stepped), atol=1e-5)
    nxt = torch.tensor([3, 5])
    assert torch.allclose(
        prior.log_probs(prior.advance(primed, nxt)),
        prior.log_probs(prior.advance(stepped, nxt)),
        atol=1e-5,
    )


def test_select_reorders_and_duplicates_rows() -> None:
    prior = make_prior()
    tokens = torch.randint(0, 11, (3, 5))
    state = prior.initial_state(3)
    for t in range(5):
        state = prior.advance(state, tokens[:, t])
    rows = torch.tensor([2, 0, 2, 1])
    chosen = prior.select(state, rows)
    assert torch.allclose(prior.log_probs(chosen), prior.log_probs(state)[rows])
    nxt = torch.tensor([1, 2, 3, 4])
    after = prior.log_probs(prior.advance(chosen, nxt))
    full = torch.log_softmax(prior(prior.with_bos(torch.cat([tokens[rows], nxt[:, None]], 1))), -1)
    assert torch.allclose(after, full[:, -1], atol=1e-5)


def test_branching_twice_from_one_state_keeps_both_children_exact() -> None:
    prior = make_prior()
    state = prior.advance(prior.initial_state(1), torch.tensor([4]))
    child_a = prior.advance(state, torch.tensor([1]))
    child_b = prior.advance(state, torch.tensor([7]))
    grand_a = prior.advance(child_a, torch.tensor([2]))
    full_a = full_log_probs(prior, torch.tensor([[4, 1, 2]]))
    full_b = full_log_probs(prior, torch.tensor([[4, 7]]))
    assert torch.allclose(prior.log_probs(grand_a), full_a, atol=1e-5)
    assert torch.allclose(prior.log_probs(child_b), full_b, atol=1e-5)


def test_sliding_window_reprimes_from_last_half_context() -> None:
    prior = make_prior(context=8)
    torch.manual_seed(2)
    tokens = torch.randint(0, 11, (2, 30))
    state = prior.initial_state(2)
    for t in range(30):
        state = prior.advance(state, tokens[:, t])
        assert state.length <= prior.context
    # Reference: replay the documented rule in plain Python.
    window: list[int] = []
    for t in range(30):
        if len(window) + 1 >= prior.context:
            window = ([*window, t])[-(prior.context // 2) :]
        else:
            window.append(t)
    expected_tokens = tokens[:, window]
    full = full_log_probs(prior, expected_tokens)
    assert torch.allclose(prior.log_probs(state), full, atol=1e-5)


def test_training_loss_decreases_on_a_periodic_sequence() -> None:
    torch.manual_seed(0)
    prior = TransformerPrior(PriorConfig.tiny(num_tokens=8))
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 8)[None].repeat(4, 1)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    first = float(prior.loss(pattern).detach())
    for _ in range(60):
        loss = prior.loss(pattern)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.3 * first


def test_config_round_trip() -> None:
    config = PriorConfig.default(num_tokens=512)
    assert PriorConfig.from_dict(config.to_dict()) == config


def test_prime_longer_than_the_window_keeps_the_last_half_context() -> None:
    prior = make_prior(context=8)
    tokens = torch.randint(0, 11, (2, 20))
    state = prior.prime(prior.initial_state(2), tokens)
    assert state.length == 1 + 4
    full = full_log_probs(prior, tokens[:, -4:])
    assert torch.allclose(prior.log_probs(state), full, atol=1e-5)


def test_repeated_select_and_advance_across_slides_equals_full_forward() -> None:
    """Beam-search use: reorder with duplicates and changing row counts every step, across
    window slides; every row equals a full forward pass over its own window, and a state
    kept alive meanwhile (its buffers must not be reused) is still intact."""
    prior = make_prior(context=12)
    g = torch.Generator().manual_seed(5)
    state = prior.initial_state(3)
    paths = [[] for _ in range(3)]  # the full history of every row, in plain Python
    kept, kept_paths = None, None
    for step in range(24):  # slides at steps 11, 17, 23
        batch = [3, 4, 2, 5][step % 4]
        rows = torch.randint(0, state.batch_size, (batch,), generator=g)
        state = prior.select(state, rows)
        paths = [list(paths[r]) for r in rows.tolist()]
        tokens = torch.randint(0, 11, (batch,), generator=g)
        state = prior.advance(state, tokens)
        for path, token in zip(paths, tokens.tolist(), strict=True):
            path.append(token)
        window = state.history.shape[1]
        assert state.history.tolist() == [path[-window:] for path in paths]
        full = full_log_probs(prior, state.history)
        assert torch.allclose(prior.log_probs(state), full, atol=1e-5), step
        if step == 2:
            kept, kept_paths = state, [list(p) for p in paths]
    assert kept is not None and kept_paths is not None and kept.length == 4
    window = kept.history.shape[1]
    assert kept.history.tolist() == [p[-window:] for p in kept_paths]
    nxt = torch.randint(0, 11, (kept.batch_size,), generator=g)
    after = prior.advance(kept, nxt)
    full = full_log_probs(prior, after.history)
    assert torch.allclose(prior.log_probs(after), full, atol=1e-5)


def test_select_reuses_the_buffers_of_dropped_states() -> None:
    """Ping-pong: once the previous state is gone, a reorder writes into its buffers."""
    prior = make_prior()
    state = prior.advance(prior.initial_state(2), torch.tensor([1, 2]))
    first = prior.select(state, torch.tensor([1, 0]))
    pointer = first.cache.keys[0].data_ptr()
    second = prior.select(first, torch.tensor([0, 0]))
    del first
    third = prior.select(second, torch.tensor([1, 0]))
    assert third.cache.keys[0].data_ptr() == pointer
    # ... and the reused buffers hold the right rows: [2, 1] -> [2, 2] -> [2, 2]
    expected = prior.log_probs(prior.advance(prior.initial_state(2), torch.tensor([2, 2])))
    assert torch.allclose(prior.log_probs(third), expected, atol=1e-6)
    nxt = torch.tensor([3, 4])
    full = full_log_probs(prior, torch.tensor([[2, 3], [2, 4]]))
    assert torch.allclose(prior.log_probs(prior.advance(third, nxt)), full, atol=1e-5)
