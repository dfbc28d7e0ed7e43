"""The run's history: one JSON line per request, answer, fault and phase, as it happens.

The checker reads this file back and nothing else of the run, so what it concludes
rests on what clients saw, not on the books it checks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Any

import orjson

Record = dict[str, Any]


class History:
    """Appends records with `t`, seconds since the run began (monotonic)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.started = time.monotonic()
        self._file: IO[bytes] = path.open("ab")

    def now(self) -> float:
        return round(time.monotonic() - self.started, 4)

    def write(self, type_: str, **fields: Any) -> Record:
        record = {"t": self.now(), "type": type_, **fields}
        self._file.write(orjson.dumps(record) + b"\n")
        return record

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> list[Record]:
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines if line.strip()]
