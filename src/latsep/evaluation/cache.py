"""Per-chunk results as JSON lines, so an interrupted run continues where it stopped.

Each line is one (row key, chunk) record. A line cut short by an interruption is ignored;
a record is appended and flushed as soon as its chunk is scored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def chunk_id(song_id: str, start: int) -> str:
    return f"{song_id}@{start}"


class ChunkCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interrupted run
                if isinstance(record, dict) and "case" in record and "chunk" in record:
                    self._records[(record["case"], record["chunk"])] = record

    def get(self, case: str, chunk: str) -> dict[str, Any] | None:
        return self._records.get((case, chunk))

    def add(self, record: dict[str, Any]) -> None:
        record = _finite(record)
        self._records[(record["case"], record["chunk"])] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
            f.flush()


def _finite(value: Any) -> Any:
    """JSON has no NaN: museval's NaN (every frame silent) becomes null. Floats keep 4
    decimals (dB and seconds need no more), which keeps the files small."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
