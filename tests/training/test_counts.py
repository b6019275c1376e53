"""The count builder against brute-force Python loops, duplicates included."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from latsep.training.counts import (
    EDGE_TOKENS,
    SparseCounter,
    TableCounter,
    TablePlan,
    encode_crops,
)


def dense_of(counter: SparseCounter) -> np.ndarray:
    indices, counts = counter.coo()
    dense = np.zeros(counter.shape, dtype=np.int64)
    np.add.at(dense, tuple(indices), counts)
    return dense


def test_sparse_counter_matches_brute_force_with_duplicates() -> None:
    rng = np.random.default_rng(0)
    k = 5
    expected: Counter[tuple[int, int, int]] = Counter()
    counter = SparseCounter((k, k, k), flush_every=7)  # force several merges
    for _ in range(6):
        i, j, y = (rng.integers(0, k, size=(3, 4)) for _ in range(3))
        # Force duplicates inside a batch: the same triple several times.
        i[0, :] = 1
        j[0, :] = 2
        y[0, :] = 3
        counter.add(i, j, y)
        for t in zip(i.ravel(), j.ravel(), y.ravel(), strict=True):
            expected[tuple(int(v) for v in t)] += 1
    dense = dense_of(counter)
    brute = np.zeros((k, k, k), dtype=np.int64)
    for (a, b, c), n in expected.items():
        brute[a, b, c] = n
    assert np.array_equal(dense, brute)
    assert dense[1, 2, 3] >= 24
    assert counter.total == 72
    indices, counts = counter.coo()
    assert indices.shape == (3, counter.nnz) and counts.shape == (counter.nnz,)
    assert np.all(counts > 0)


def test_non_cubic_shape_and_range_check() -> None:
    counter = SparseCounter((2, 7, 7))
    counter.add(np.array([0, 1, 1]), np.array([6, 0, 0]), np.array([3, 5, 5]))
    dense = dense_of(counter)
    assert dense[1, 0, 5] == 2 and dense[0, 6, 3] == 1 and dense.sum() == 3
    with pytest.raises(ValueError):
        counter.add(np.array([2]), np.array([0]), np.array([0]))


def test_merge_and_coverage() -> None:
    a = SparseCounter((3, 3, 3))
    a.add(np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([0, 0, 2]))
    b = SparseCounter((3, 3, 3))
    b.add(np.array([0, 2]), np.array([0, 2]), np.array([0, 2]))
    cov = b.coverage(a)  # b's triples: (0,0,0) seen, (2,2,2) not
    assert cov == {"weighted": 0.5, "distinct": 0.5}
    a.merge(b)
    assert dense_of(a)[0, 0, 0] == 3 and a.total == 5


def test_table_counter_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    k, b, n, t = 4, 3, 3, 5
    sources = rng.integers(0, k, size=(b, n, t))
    sources[:, :, 1] = sources[:, :, 0]  # duplicates within a crop
    pair_means = {p: rng.integers(0, k, size=(b, t)) for p in itertools.combinations(range(n), 2)}
    m3 = rng.integers(0, k, size=(b, t))
    partial = [pair_means[(0, 1)], m3]
    counter = TableCounter(TablePlan(("bass", "drums", "other"), with_chain=True), k)
    counter.add(sources, pair_means, partial)
    counter.add(sources, pair_means, partial)  # same batch twice: counts double
    tables = counter.tables()
    assert set(tables) == {
        "lass:bass+drums",
        "lass:bass+other",
        "lass:drums+other",
        "chain:bass+drums+other",
        "marginal:bass+drums+other",
    }

    def dense(coo: tuple[np.ndarray, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, dtype=np.int64)
        np.add.at(out, tuple(coo[0]), coo[1])
        return out

    lass = np.zeros((k, k, k), dtype=np.int64)
    level1 = np.zeros((k, k, k), dtype=np.int64)
    marg = np.zeros((n, k, k), dtype=np.int64)
    for _ in range(2):
        for r in range(b):
            for s in range(t):
                lass[sources[r, 0, s], sources[r, 2, s], pair_means[(0, 2)][r, s]] += 1
                level1[pair_means[(0, 1)][r, s], sources[r, 2, s], m3[r, s]] += 1
                for i in range(n):
                    marg[i, sources[r, i, s], m3[r, s]] += 1
    assert np.array_equal(dense(tables["lass:bass+other"][0], (k, k, k)), lass)
    chain = tables["chain:bass+drums+other"]
    assert len(chain) == 2
    lass01 = dense(tables["lass:bass+drums"][0], (k, k, k))
    assert np.array_equal(dense(chain[0], (k, k, k)), lass01)  # level 0 is the pair table
    assert np.array_equal(dense(chain[1], (k, k, k)), level1)
    assert np.array_equal(dense(tables["marginal:bass+drums+other"][0], (n, k, k)), marg)


class _FakeCodec(torch.nn.Module):
    """'Encodes' a crop (B, L) as round(10·mean of each hop-4 frame) clipped to [0, K)."""

    num_tokens = 16

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.view(audio.shape[0], -1, 4).mean(-1)
        return (frames * 10).round().clamp(0, 15).long()


def test_encode_crops_builds_means_in_chain_order() -> None:
    crops = torch.zeros(2, 3, 4 * 12)
    crops[:, 0] = 0.3
    crops[:, 1] = 0.9
    crops[:, 2] = 1.5
    plan = TablePlan(("a", "b", "c"), with_chain=True)
    sources, pairs, partial = encode_crops(_FakeCodec(), crops, plan)
    assert sources.shape == (2, 3, 8)  # 12 tokens minus 2 at each edge
    assert np.all(sources[:, 0] == 3) and np.all(sources[:, 2] == 15)
    assert np.all(pairs[(0, 1)] == 6) and np.all(pairs[(1, 2)] == 12)
    assert np.all(partial[0] == 6) and np.all(partial[1] == 9)  # m2, m3


class _LatticeCodec(torch.nn.Module):
    """Hop 1, code k = the value k: tokens are the rounded samples."""

    num_tokens, hop_length, sample_rate = 8, 1, 22050
    codebook = torch.zeros(8, 1)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return audio.round().clamp(0, 7).long()


class _FixedStore:
    stems = ("bass", "drums", "other")

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio  # (B, N, L)

    def crops(self, rng, size, length, gain_db):
        return self.audio[:size, :, :length]


def test_view_counts_are_each_sources_tokens_against_the_filtered_means():
    from latsep.models.separation.views import ViewFilter
    from latsep.training.view_counts import count_views

    audio = np.random.default_rng(0).uniform(0, 7, (4, 3, 40)).astype(np.float32)
    band = ViewFilter("lowpass", (5000.0,))
    tables = count_views(
        _LatticeCodec(), _FixedStore(audio), {"low": band}, crops=4, crop_seconds=40 / 22050,
        batch_size=4, progress=False, initial={"view-low:bass+drums+other": [
            (np.array([[0], [1], [2]]), np.array([5]))]},
    )  # fmt: skip
    expected = np.zeros((3, 8, 8), np.int64)
    expected[0, 1, 2] = 5  # the initial counts
    observed = band.apply(audio.mean(1), 22050).round().clip(0, 7).astype(int)  # (B, L)
    tokens = audio.round().clip(0, 7).astype(int)
    edge = EDGE_TOKENS
    for b in range(4):
        for i in range(3):
            for t in range(edge, 40 - edge):
                expected[i, tokens[b, i, t], observed[b, t]] += 1
    ((indices, counts),) = tables["view-low:bass+drums+other"]
    dense = np.zeros((3, 8, 8), np.int64)
    np.add.at(dense, tuple(indices), counts)
    np.testing.assert_array_equal(dense, expected)


def test_counted_view_tokens_are_the_ones_separation_observes():
    """What count_views pairs with each source's token is what the pipeline observes of the
    same mixture (models_input → observe_views): the same signal, filter and codec."""
    from latsep.models.separation.observation import models_input
    from latsep.models.separation.views import MixtureView, ViewFilter, observe_views
    from latsep.training.view_counts import count_views

    audio = np.random.default_rng(1).uniform(0, 7, (1, 3, 40)).astype(np.float32)
    band = ViewFilter("highpass", (2000.0,))
    tables = count_views(_LatticeCodec(), _FixedStore(audio), {"high": band}, crops=1,
                         crop_seconds=40 / 22050, batch_size=1, progress=False)  # fmt: skip
    ((indices, counts),) = tables["view-high:bass+drums+other"]
    heard = models_input(_LatticeCodec(), audio[0].sum(0), 1.0, 3)
    view = MixtureView("high", band, None, 1.0)  # the table is not needed for the tokens
    observed = observe_views(_LatticeCodec(), [view], heard).tokens[0].numpy()
    bass = audio[0, 0].round().clip(0, 7).astype(int)
    expected = Counter(
        (int(bass[t]), int(observed[t])) for t in range(EDGE_TOKENS, 40 - EDGE_TOKENS)
    )
    counted = Counter()
    for (i, z, v), c in zip(indices.T.tolist(), counts.tolist(), strict=True):
        if i == 0:
            counted[(z, v)] += c
    assert counted == expected
