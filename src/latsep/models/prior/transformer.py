"""Decoder-only transformer prior over one source's codec tokens, with an explicit KV cache.

Sequences start with a BOS token (index K), so the distribution of the first token is
defined. Positions are learned and absolute, 0..context-1 (position 0 is BOS), so a
window holds BOS + (context − 1) tokens. Training crops are random windows of a
source's token stream, each beginning with BOS.

When the cache is full, the state *slides*: it is re-primed with BOS followed by the
last context // 2 tokens of the history, in one forward pass. This is exactly the
situation seen in training (a window that starts with BOS in the middle of a piece),
so long audio keeps working at the cost of one prefix pass every context // 2 steps.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PriorConfig:
    num_tokens: int = 1024  # K (the BOS token is K, outside the predicted range)
    context: int = 1040  # positions, BOS included: 1039 tokens ≈ 3.02 s at hop 64
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError("d_model must be divisible by num_heads")
        if self.context < 4:
            raise ValueError("context must be at least 4")

    @classmethod
    def tiny(cls, num_tokens: int = 16) -> PriorConfig:
        return cls(num_tokens=num_tokens, context=64, d_model=32, num_layers=1, num_heads=2)

    @classmethod
    def default(cls, num_tokens: int = 1024) -> PriorConfig:
        """1040 positions ≈ 3.02 s at hop 64; d_model 256, 4 layers (CALIBRATION.md)."""
        return cls(num_tokens=num_tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown prior config keys: {sorted(unknown)}")
        return cls(**data)


class KVCache:
    """Per-layer keys and values for B rows, preallocated to the context.

    keys[i], values[i]: (B, H, context, hs); the first `length` positions are valid.
    Several states may share one cache (an advanced state and its parent); a state
    only owns the positions below its own length, and `written` tells whether a
    later position was already claimed by another child — then the child copies.

    Reordering (beam search, every step) copies the valid prefix into buffers from a
    `BufferPool` shared by every cache derived from the same `empty` one: a cache's
    buffers go back to the pool when the cache is garbage-collected, i.e. when no state
    can read them any more, so a search ping-pongs between two sets of buffers instead of
    allocating a new cache per step.
    """

    def __init__(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        written: int,
        pool: BufferPool | None = None,
    ) -> None:
        self.keys = keys
        self.values = values
        self.written = written
        self.pool = pool if pool is not None else BufferPool()
        weakref.finalize(self, self.pool.give, keys, values)

    @classmethod
    def empty(
        cls, config: PriorConfig, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        head_dim = config.d_model // config.num_heads
        shape = (batch_size, config.num_heads, config.context, head_dim)
        keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        return cls(keys, values, 0)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def select(self, rows: torch.Tensor, length: int) -> KVCache:
        """A new cache of rows (B_new,); copies only the `length` valid positions."""
        keys, values = self.pool.take(self.keys, rows.shape[0])
        for source, target in zip(self.keys + self.values, keys + values, strict=True):
            # Straight into the target's prefix: no temporary of the gathered rows.
            torch.index_select(source[:, :, :length], 0, rows, out=target[:, :, :length])
        return KVCache(keys, values, length, self.pool)

    def copy(self, length: int) -> KVCache:
        """A new cache with the same rows; copies only the `length` valid positions."""
        keys, values = self.pool.take(self.keys, self.keys[0].shape[0])
        for source, target in zip(self.keys + self.values, keys + values, strict=True):
            target[:, :, :length] = source[:, :, :length]
        return KVCache(keys, values, length, self.pool)


class BufferPool:
    """Free key/value buffer sets of one cache lineage, by shape; keeps at most two per shape.

    Buffers come back only from garbage-collected caches (see KVCache), so a buffer handed
    out is never readable through any live state. Their contents are stale: a cache only
    reads positions below its length, which `select`/`copy` overwrite.
    """

    _KEEP = 2

    def __init__(self) -> None:
        self._free: dict[tuple[int, ...], list[tuple[list[torch.Tensor], list[torch.Tensor]]]] = {}

    def take(
        self, like: list[torch.Tensor], batch_size: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """A free buffer set of `like`'s layers with batch_size rows, or a new one."""
        shape = (batch_size, *like[0].shape[1:])
        free = self._free.get(shape)
        if free:
            return free.pop()
        return [like[0].new_empty(shape) for _ in like], [like[0].new_empty(shape) for _ in like]

    def give(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        free = self._free.setdefault(tuple(keys[0].shape), [])
        if len(free) < self._KEEP:
            free.append((keys, values))


@dataclass(frozen=True)
class PriorState:
    """History of B rows: the cache, the tokens fed (without BOS), next-token log-probs."""

    cache: KVCache
    length: int  # positions filled in the cache (BOS included)
    history: torch.Tensor  # (B, H_t) long: the tokens of the current window, after BOS
    log_probs: torch.Tensor  # (B, K) fp32

    @property
    def batch_size(self) -> int:
        return self.history.shape[0]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(
        self,
        x: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """x (B, T, C). With a cache, writes positions start..start+T and attends to 0..start+T."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.num_heads, -1).transpose(1, 2)  # (B, H, T, hs)
        k = k.view(b, t, self.num_heads, -1).transpose(1, 2)
        v = v.view(b, t, self.num_heads, -1).transpose(1, 2)
        if cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            keys, values = cache
            keys[:, :, start : start + t] = k
            values[:, :, start : start + t] = v
            k_all = keys[:, :, : start + t]  # (B, H, start+T, hs)
            v_all = values[:, :, : start + t]
            if t == 1:
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:
                # Query i (absolute position start+i) sees keys 0..start+i.
                rows = torch.arange(t, device=x.device)[:, None] + start
                cols = torch.arange(start + t, device=x.device)[None, :]
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=cols <= rows)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, cache: Any = None, start: int = 0) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache, start)
        return x + self.mlp(self.norm2(x))


class TransformerPrior(nn.Module):
    """GPT-style prior; an nn.Module that also implements the Prior protocol."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.num_tokens + 1, config.d_model)  # + BOS
        self.position_embedding = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.num_tokens, bias=False)
        self.apply(_init_weights)

    # -- plain forward (training) ---------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def context(self) -> int:
        """Maximum positions per window, BOS included."""
        return self.config.context

    @property
    def bos(self) -> int:
        return self.config.num_tokens

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, K) for inputs (B, T) starting with BOS; T ≤ context."""
        x = self._embed(inputs, 0)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of token windows (B, T), T ≤ context."""
        inputs = self.with_bos(tokens[:, :-1])
        logits = self(inputs)  # (B, T, K)
        return F.cross_entropy(logits.reshape(-1, self.num_tokens).float(), tokens.reshape(-1))

    def with_bos(self, tokens: torch.Tensor) -> torch.Tensor:
        bos = torch.full((tokens.shape[0], 1), self.bos, dtype=torch.long, device=tokens.device)
        return torch.cat([bos, tokens], dim=1)

    def _embed(self, inputs: torch.Tensor, start: int) -> torch.Tensor:
        t = inputs.shape[1]
        if start + t > self.context:
            raise ValueError(f"{start + t} positions exceed the prior's context {self.context}")
        positions = torch.arange(start, start + t, device=inputs.device)
        return self.token_embedding(inputs) + self.position_embedding(positions)[None]

    def _step_cached(self, tokens: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Log-probs (B, K) after one token per row (B,) written at position `start`.

        The same computation as `_forward_cached` for T = 1, written with the parameters
        directly: one decoding step is a few dozen small kernels, and going through the
        modules (hooks, views, the mask bookkeeping of T > 1) cost as much as the arithmetic.
        """
        if start >= self.context:
            raise ValueError(f"{start + 1} positions exceed the prior's context {self.context}")
        b, c = tokens.shape[0], self.config.d_model
        heads = self.config.num_heads
        x = (
            self.token_embedding.weight.index_select(0, tokens)
            + self.position_embedding.weight[start]
        )
        for i, block in enumerate(self.blocks):
            attn = block.attn
            h = F.layer_norm(x, (c,), block.norm1.weight, block.norm1.bias)
            qkv = F.linear(h, attn.qkv.weight, attn.qkv.bias).view(b, 3, heads, -1)  # (B, 3, H, hs)
            keys, values = cache.keys[i], cache.values[i]  # (B, H, context, hs)
            keys[:, :, start] = qkv[:, 1]
            values[:, :, start] = qkv[:, 2]
            y = F.scaled_dot_product_attention(
                qkv[:, 0, :, None], keys[:, :, : start + 1], values[:, :, : start + 1]
            )  # (B, H, 1, hs)
            x = x + F.linear(y.view(b, c), attn.proj.weight, attn.proj.bias)
            h = F.layer_norm(x, (c,), block.norm2.weight, block.norm2.bias)
            up, down = block.mlp[0], block.mlp[2]
            x = x + F.linear(F.gelu(F.linear(h, up.weight, up.bias)), down.weight, down.bias)
        x = F.layer_norm(x, (c,), self.norm.weight, self.norm.bias)
        return torch.log_softmax(F.linear(x, self.head.weight).float(), dim=-1)

    def _forward_cached(self, inputs: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Log-probs (B, K) after inputs (B, T) written at positions start..start+T."""
        x = self._embed(inputs, start)
        for i, block in enumerate(self.blocks):
            x = block(x, (cache.keys[i], cache.values[i]), start)
        logits = self.head(self.norm(x[:, -1]))
        return torch.log_softmax(logits.float(), dim=-1)

    # -- the Prior protocol -----------------------------------------------------------------

    @torch.inference_mode()
    def initial_state(self, batch_size: int) -> PriorState:
        history = torch.zeros((batch_size, 0), dtype=torch.long, device=self.device)
        return self._prime_window(history)

    def log_probs(self, state: PriorState) -> torch.Tensor:
        return state.log_probs

    @torch.inference_mode()
    def advance(self, state: PriorState, tokens: torch.Tensor) -> PriorState:
        tokens = tokens.to(self.device, torch.long).view(-1, 1)  # (B, 1)
        history = torch.cat([state.history, tokens], dim=1)
        if state.length >= self.context:
            return self._prime_window(history[:, -(self.context // 2) :])
        cache = state.cache
        if cache.written != state.length:
            # Another state advanced from the same parent and owns the next position.
            cache = cache.copy(state.length)
        log_probs = self._step_cached(tokens[:, 0], cache, state.length)
        cache.written = state.length + 1
        return PriorState(cache, state.length + 1, history, log_probs)

    @torch.inference_mode()
    def select(self, state: PriorState, rows: torch.Tensor) -> PriorState:
        rows = rows.to(self.device, torch.long)
        if rows.shape[0] == state.batch_size and bool(
            (rows == torch.arange(state.batch_size, device=rows.device)).all()
        ):
            return state  # identity: nothing to copy
        return PriorState(
            state.cache.select(rows, state.length),
            state.length,
            state.history.index_select(0, rows),
            state.log_probs.index_select(0, rows),
        )

    @torch.inference_mode()
    def prime(self, state: PriorState, tokens: torch.Tensor) -> PriorState:
        """Append a prefix (B, T0) in as few forward passes as the context allows."""
        tokens = tokens.to(self.device, torch.long)
        if tokens.shape[1] == 0:
            return state
        history = torch.cat([state.history, tokens], dim=1)
        room = self.context - state.length
        if tokens.shape[1] > room:
            # Restart the window on the longest tail that leaves room for stepping.
            keep = min(history.shape[1], self.context // 2)
            return self._prime_window(history[:, -keep:])
        cache = state.cache
        if cache.written != state.length:
            # A child owns the next positions: copy the prefix this pass attends to (BOS and
            # the state's history, positions 0..length-1), as `advance` does.
            cache = cache.copy(state.length)
        log_probs = self._forward_cached(tokens, cache, state.length)
        cache.written = state.length + tokens.shape[1]
        return PriorState(cache, cache.written, history, log_probs)

    @torch.inference_mode()
    def _prime_window(self, history: torch.Tensor) -> PriorState:
        """A fresh window: BOS + history (B, H) with H < context, one forward pass."""
        batch_size = history.shape[0]
        param = self.head.weight
        cache = KVCache.empty(self.config, batch_size, param.device, param.dtype)
        inputs = self.with_bos(history)
        log_probs = self._forward_cached(inputs, cache, 0)
        cache.written = inputs.shape[1]
        return PriorState(cache, inputs.shape[1], history, log_probs)

    @torch.inference_mode()
    def sequence_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens[:, t] | BOS, tokens[:, :t]) for (B, T), T ≤ context → (B, T)."""
        logits = self(self.with_bos(tokens[:, :-1])).float()
        return torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


def bits_per_token(nats: float) -> float:
    return nats / math.log(2)
