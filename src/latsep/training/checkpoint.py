"""Resumable checkpoints of our own runs: weights in safetensors, progress in JSON.

The optimizer state is saved with torch.save and read back with weights_only=True;
it only ever lives in a run directory this code wrote (never a user-supplied file).
Writes go to a temporary name first and are renamed, so a killed run leaves either
the previous checkpoint or the new one. A model with a `config` (`to_dict()`: our codec and
priors) has it saved beside its weights, as a bundle carries its own, and a run directory
holding another architecture's checkpoint is refused instead of half loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
CONFIG = "config.json"


@dataclass
class RunState:
    step: int = 0
    elapsed_seconds: float = 0.0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # validation records
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, state: RunState
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic(run_dir / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    if optimizer is not None:
        _atomic(run_dir / OPTIMIZER, lambda tmp: torch.save(optimizer.state_dict(), tmp))
    config = _config_of(model)
    if config is not None:
        config_text = json.dumps(config, indent=1)
        _atomic(run_dir / CONFIG, lambda tmp: tmp.write_text(config_text, encoding="utf-8"))
    text = json.dumps(state.__dict__, indent=1)
    _atomic(run_dir / STATE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_checkpoint(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> RunState | None:
    """Restore model (and optimizer) from run_dir; None when there is no checkpoint yet."""
    if not (run_dir / STATE).is_file() or not (run_dir / WEIGHTS).is_file():
        return None
    config = _config_of(model)
    if config is not None and (run_dir / CONFIG).is_file():
        stored = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
        if stored != json.loads(json.dumps(config)):  # compared as JSON: tuples are lists
            raise ValueError(
                f"{run_dir} holds a checkpoint of another configuration ({stored}); this run "
                f"is {config}: give it another --run-dir or remove the old one"
            )
    model.load_state_dict(load_file(str(run_dir / WEIGHTS), device=str(_device_of(model))))
    if optimizer is not None and (run_dir / OPTIMIZER).is_file():
        optimizer.load_state_dict(torch.load(run_dir / OPTIMIZER, weights_only=True))
    data = json.loads((run_dir / STATE).read_text(encoding="utf-8"))
    return RunState(**data)


def read_state(run_dir: Path) -> RunState | None:
    path = run_dir / STATE
    if not path.is_file():
        return None
    return RunState(**json.loads(path.read_text(encoding="utf-8")))


def _config_of(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else None


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.state_dict().values():
        return tensor.device
    return torch.device("cpu")


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
