"""The failure log next to a store: one JSON line per failed attempt, appended, never rewritten.

What is done is whatever the store's complete parts hold. A clip counts as failed while its latest
entry here is a failure: a later success of a clip that once failed appends a `resolved` entry, and
a cached clip whose file later turns unreadable fails again (its old arrays are then stale).
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable


class FailureLog:
    FILE_NAME = "failures.jsonl"

    def __init__(self, store_dir: str | os.PathLike):
        self.path = Path(store_dir) / self.FILE_NAME

    def record(self, clip_id: str, path: str, content_id: str | None, reason: str) -> None:
        self._append({"clip_id": clip_id, "path": str(path), "content_id": content_id, "reason": reason})

    def resolve(self, clip_id: str, content_id: str) -> None:
        """A clip that failed before has now been extracted."""
        self._append({"clip_id": clip_id, "content_id": content_id, "resolved": True})

    def failures(self) -> list[dict]:
        """The latest entry of every clip whose latest entry is a failure, sorted by clip_id."""
        latest: dict[str, dict] = {}
        for entry in self._entries():
            latest[entry["clip_id"]] = entry
        return [e for _, e in sorted(latest.items()) if not e.get("resolved")]

    def _append(self, entry: dict) -> None:
        entry["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        line = (json.dumps(entry) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One O_APPEND write per entry: lines from concurrent workers never interleave.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a line torn by a kill must not swallow this entry
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _entries(self) -> Iterable[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a kill mid-write
                    continue
                if isinstance(entry, dict) and "clip_id" in entry:
                    yield entry
