"""Module weights on disk: safetensors, optionally fp16, always fp32 (the module's dtypes)
in memory.

fp16 halves the bundle's weights. The quantizer (codebook and its EMA statistics) stays
fp32: it decides which token each frame gets, and the lqvae likelihood reads the codebook.
(Measured on a K = 512 default-shaped codec: all-fp16 changes 0.15 % of tokens, fp16 with
an fp32 quantizer 0.11 %; the rest comes from the encoder's own rounding.)
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from latsep.bundle.manifest import BundleError

WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
FP32_PREFIXES = ("quantizer.",)  # quantization-critical state kept in full precision


def save_module(path: Path, module: nn.Module, dtype: str = "float16") -> None:
    """Write `module`'s state dict; floating tensors in `dtype` except FP32_PREFIXES, and
    except any tensor whose values overflow fp16 (kept fp32 rather than saved as inf)."""
    target = WEIGHT_DTYPES[dtype]
    tensors = {}
    for name, value in module.state_dict().items():
        value = value.detach().contiguous().cpu()
        if value.is_floating_point() and not name.startswith(FP32_PREFIXES):
            cast = value.to(target)
            if bool(torch.isfinite(cast).all()) or not bool(torch.isfinite(value).all()):
                value = cast
        tensors[name] = value.contiguous()
    save_file(tensors, str(path))


def load_module(path: Path, module: nn.Module) -> None:
    """Load weights saved by save_module into `module`, cast to its own dtypes (fp32)."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable weights ({exc})") from exc
    expected = module.state_dict()
    for name, value in tensors.items():
        want = expected.get(name)
        if want is None or value.dtype == want.dtype:
            continue  # unknown names are reported by load_state_dict below
        if not (value.is_floating_point() and want.is_floating_point()):
            raise BundleError(f"{path}: {name} is {value.dtype}, the model needs {want.dtype}")
        tensors[name] = value.to(want.dtype)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise BundleError(f"{path}: weights do not fit the config: {' '.join(first)}") from exc
