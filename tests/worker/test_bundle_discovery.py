"""Which bundles a worker loads when LATSEP_BUNDLES is unset."""

from __future__ import annotations

from pathlib import Path

from latsep.settings import Settings


def _bundle(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    return path


def test_default_bundles_win_over_the_rest(tmp_path: Path) -> None:
    tiny = [_bundle(tmp_path / "tiny" / "lq"), _bundle(tmp_path / "tiny" / "plain")]
    assert Settings(bundles="", artifacts_dir=tmp_path).bundle_paths() == tiny
    default = [_bundle(tmp_path / "default" / "lq"), _bundle(tmp_path / "default" / "plain")]
    assert Settings(bundles="", artifacts_dir=tmp_path).bundle_paths() == default


def test_explicit_bundles_are_taken_as_given(tmp_path: Path) -> None:
    _bundle(tmp_path / "default" / "plain")
    tiny = _bundle(tmp_path / "tiny" / "plain")
    settings = Settings(bundles=str(tiny.parent), artifacts_dir=tmp_path)
    assert settings.bundle_paths() == [tiny]
