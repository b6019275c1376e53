"""Checkpoints carry their model's config: a run directory of another architecture is
refused on resume instead of being half loaded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from latsep.models.codec import Codec, CodecConfig
from latsep.training.checkpoint import CONFIG, RunState, load_checkpoint, save_checkpoint


def test_a_checkpoint_resumes_only_into_its_own_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    codec = Codec(CodecConfig.tiny())
    save_checkpoint(tmp_path, codec, None, RunState(step=7))
    assert json.loads((tmp_path / CONFIG).read_text()) == json.loads(
        json.dumps(codec.config.to_dict())
    )
    same = Codec(CodecConfig.tiny())
    state = load_checkpoint(tmp_path, same, None)
    assert state is not None and state.step == 7
    for name, tensor in codec.state_dict().items():
        torch.testing.assert_close(same.state_dict()[name], tensor)
    other = Codec(replace(CodecConfig.tiny(), num_tokens=2 * CodecConfig.tiny().num_tokens))
    with pytest.raises(ValueError, match="another configuration"):
        load_checkpoint(tmp_path, other, None)


def test_a_checkpoint_without_a_config_still_loads(tmp_path: Path) -> None:
    """Run directories written before configs were saved resume as they did."""
    codec = Codec(CodecConfig.tiny())
    save_checkpoint(tmp_path, codec, None, RunState(step=3))
    (tmp_path / CONFIG).unlink()
    state = load_checkpoint(tmp_path, Codec(CodecConfig.tiny()), None)
    assert state is not None and state.step == 3
