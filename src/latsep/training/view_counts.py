"""Count band-view tables p(v | z_i) over random train crops (models/separation/views.py).

Like mlass-pe's marginal table, with the mixture token replaced by the token of the filtered
mixture: for every crop (stems at random gains, as the other tables), each source's tokens
against the view's token of the crop's mean. Only views are encoded beyond the sources, so
views can be added to a bundle later with its own codec (`latsep bundle add-views`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from tqdm import tqdm

from latsep.models.separation.views import ViewFilter
from latsep.training.counts import EDGE_TOKENS, SparseCounter
from latsep.training.data import StemStore

COO = tuple[np.ndarray, np.ndarray]


def view_table_name(view: str, sources: tuple[str, ...]) -> str:
    return f"view-{view}:" + "+".join(sources)


@torch.inference_mode()
def count_views(
    codec: torch.nn.Module,
    store: StemStore,
    views: Mapping[str, ViewFilter],
    *,
    crops: int,
    seed: int = 0,
    gain_db: tuple[float, float] = (-6.0, 6.0),
    crop_seconds: float = 2.0,
    batch_size: int = 16,
    progress: bool = True,
    initial: Mapping[str, list[COO]] | None = None,
) -> dict[str, list[COO]]:
    """{"view-<name>:a+b+c": [(indices [i, z_i, v] (3, nnz), counts (nnz,))]} for the store's
    sources in its order, over `crops` crops (their edges left out, as in the other tables),
    plus `initial`, tables of the same names counted earlier with the same codec."""
    codec.eval()
    n, k = len(store.stems), int(codec.num_tokens)
    rate, hop = int(codec.sample_rate), int(codec.hop_length)
    length = max(1, round(crop_seconds * rate / hop)) * hop
    counters = {view: SparseCounter((n, k, k)) for view in views}
    for view, counter in counters.items():
        for indices, counts in (initial or {}).get(view_table_name(view, store.stems), []):
            counter.add_counts(indices, counts)
    rng = np.random.default_rng(seed)
    batches = math.ceil(crops / batch_size)
    for index in tqdm(range(batches), desc="view counts", disable=not progress):
        size = min(batch_size, crops - index * batch_size)
        audio = store.crops(rng, size, length, gain_db)  # (B, N, L)
        device = codec.codebook.device
        flat = torch.from_numpy(audio).transpose(0, 1).reshape(n * size, -1).to(device)
        tokens = codec.encode(flat).reshape(n, size, -1).cpu().numpy()
        t = tokens.shape[-1]  # edges trimmed as encode_crops trims them
        steps = slice(EDGE_TOKENS, t - EDGE_TOKENS) if t > 4 * EDGE_TOKENS else slice(None)
        sources = tokens[..., steps]  # (N, B, T)
        which = np.broadcast_to(np.arange(n)[:, None, None], sources.shape)
        mean = audio.mean(1)
        for view, band in views.items():
            heard = torch.from_numpy(band.apply(mean, rate)).to(device)
            observed = codec.encode(heard).cpu().numpy()[:, steps]  # (B, T)
            counters[view].add(which, sources, np.broadcast_to(observed[None], sources.shape))
    return {view_table_name(v, store.stems): [c.coo()] for v, c in counters.items()}
