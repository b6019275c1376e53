"""TransformerPrior: the Prior protocol, KV cache == full forward, sliding, select."""

from __future__ import annotations

import torch

from latsep.models.prior.protocol import Prior
from latsep.models.prior.transformer import PriorConfig, TransformerPrior


def make_prior(context: int = 16, seed: int = 0) -> TransformerPrior:
    torch.manual_seed(seed)
    config = PriorConfig(num_tokens=11, context=context, d_model=32, num_layers=2, num_heads=4)
    prior = TransformerPrior(config).eval()
    # Random non-trivial weights so that attention actually depends on the history.
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return prior


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
    full_a = torch.log_softmax(prior(prior.with_bos(torch.tensor([[4, 1, 2]]))), -1)[:, -1]
    full_b = torch.log_softmax(prior(prior.with_bos(torch.tensor([[4, 7]]))), -1)[:, -1]
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
    full = torch.log_softmax(prior(prior.with_bos(expected_tokens)), -1)[:, -1]
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
    full = torch.log_softmax(prior(prior.with_bos(tokens[:, -4:])), -1)[:, -1]
    assert torch.allclose(prior.log_probs(state), full, atol=1e-5)
