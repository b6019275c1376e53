"""Count tables on disk: COO levels in one safetensors file per table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latsep.models.bundle.manifest import BundleError

COO = tuple[np.ndarray, np.ndarray]  # indices (3, nnz) int64, counts (nnz,) int64


def save_table(path: Path, levels: list[COO]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for level, (indices, counts) in enumerate(levels):
        tensors[f"level{level}.indices"] = torch.from_numpy(np.ascontiguousarray(indices, np.int64))
        tensors[f"level{level}.counts"] = torch.from_numpy(np.ascontiguousarray(counts, np.int64))
    save_file(tensors, str(path))


def load_table(
    path: Path, shape: tuple[int, int, int], levels: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Levels of (indices (3, nnz) long, counts (nnz,) long), checked against `shape`."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable table ({exc})") from exc
    out = []
    for level in range(levels):
        indices = tensors.get(f"level{level}.indices")
        counts = tensors.get(f"level{level}.counts")
        if indices is None or counts is None:
            raise BundleError(f"{path}: level {level} is missing")
        if indices.dim() != 2 or indices.shape[0] != 3 or counts.shape != (indices.shape[1],):
            raise BundleError(f"{path}: level {level} is not COO (3, nnz) + (nnz,)")
        if indices.numel():
            low = indices.min(dim=1).values
            high = indices.max(dim=1).values
            if (low < 0).any() or any(int(h) >= s for h, s in zip(high, shape, strict=True)):
                raise BundleError(f"{path}: level {level} has indices outside {shape}")
        if counts.numel() and int(counts.min()) < 0:
            raise BundleError(f"{path}: level {level} has negative counts")
        out.append((indices.long(), counts.long()))
    return out
