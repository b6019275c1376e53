"""The corpus index (index.json): names, stems, splits and the atomic write."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

STEMS = ("bass", "drums", "other")
SPLITS = ("train", "valid", "test")
INDEX_NAME = "index.json"


def write_index(root: Path, index: dict) -> None:
    """Write index.json atomically (a reader sees the old index or the complete new one)."""
    text = json.dumps(index, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".json", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, root / INDEX_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_index(root: Path) -> dict:
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no corpus index at {path}; build one with `latsep corpus build --out {root}`"
        )
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("format") != "latsep-corpus":
        raise ValueError(f"{path} is not a latsep corpus index")
    return index
