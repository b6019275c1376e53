"""An order-1 Markov chain over codec tokens: the Prior of the exactness tests and benchmarks.

Its posteriors can be enumerated by brute force, which is what makes it useful: the
separation engine only sees the Prior protocol, so a test that passes with this chain holds
for any prior.
"""

from __future__ import annotations

import torch


class MarkovPrior:
    """p(z_1) = initial[z_1], p(z_t | z_(t-1)) = transition[z_(t-1), z_t].

    State: the last token of every row, (B,) LongTensor, -1 for an empty history.
    """

    def __init__(self, initial: torch.Tensor, transition: torch.Tensor) -> None:
        initial = torch.as_tensor(initial, dtype=torch.float64)
        transition = torch.as_tensor(transition, dtype=torch.float64)
        k = initial.shape[0]
        if initial.shape != (k,) or transition.shape != (k, k):
            raise ValueError(f"need initial (K,) and transition (K, K); got {initial.shape}")
        if (initial < 0).any() or (transition < 0).any():
            raise ValueError("probabilities must be non-negative")
        if not (torch.isfinite(initial).all() and torch.isfinite(transition).all()):
            raise ValueError("probabilities must be finite")
        if not initial.sum() > 0:
            raise ValueError("initial weights are all zero: no first token is possible")
        dead = (transition.sum(1) <= 0).nonzero().flatten()
        if dead.numel():
            raise ValueError(
                f"transition rows {dead.tolist()[:8]} are all zero: no token could follow them"
            )
        # Normalise here so callers may pass weights; log(0) = -inf marks impossible tokens.
        self._log_initial = (initial / initial.sum()).log().float()  # (K,)
        self._log_transition = (transition / transition.sum(1, keepdim=True)).log().float()

    @classmethod
    def random(
        cls, num_tokens: int, *, generator: torch.Generator | None = None, sharpness: float = 1.0
    ) -> MarkovPrior:
        """A random chain; larger `sharpness` gives peakier rows (log-weights scaled by it)."""
        logits = torch.randn(num_tokens + 1, num_tokens, generator=generator) * sharpness
        weights = logits.softmax(-1)
        return cls(weights[0], weights[1:])

    @property
    def num_tokens(self) -> int:
        return self._log_initial.shape[0]

    @property
    def log_initial(self) -> torch.Tensor:
        """log p(z_1), (K,)."""
        return self._log_initial

    @property
    def log_transition(self) -> torch.Tensor:
        """log p(z_t | z_(t-1)), (K, K) indexed [previous, next]."""
        return self._log_transition

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.full((batch_size,), -1, dtype=torch.long)

    def log_probs(self, state: torch.Tensor) -> torch.Tensor:
        rows = self._log_transition[state.clamp(min=0)]  # (B, K)
        return torch.where((state < 0)[:, None], self._log_initial[None, :], rows)

    def advance(self, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.to(torch.long).clone()

    def select(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return state[rows]
