"""The Prior contract of DESIGN.md: what the separation engine needs from a source model.

Our transformer implements it; so does a Markov chain in the tests; a user may plug in
their own. State is opaque to the engine: it only ever passes it back.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Prior(Protocol):
    """An autoregressive model of one source's token sequence.

    Shapes: B batch rows, K codes.
    """

    @property
    def num_tokens(self) -> int:
        """K, the codebook size the prior predicts over."""
        ...

    def initial_state(self, batch_size: int) -> Any:
        """State for `batch_size` empty histories."""
        ...

    def log_probs(self, state: Any) -> torch.Tensor:
        """Normalised log p(next token | history), (B, K)."""
        ...

    def advance(self, state: Any, tokens: torch.Tensor) -> Any:
        """Append `tokens` (B,) to every row's history; returns the new state."""
        ...

    def select(self, state: Any, rows: torch.Tensor) -> Any:
        """Reorder or duplicate rows: the new row j is old row rows[j]; rows is (B_new,)."""
        ...
