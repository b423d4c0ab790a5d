"""The failure log next to a store: one JSON line per failed attempt, appended, never rewritten.

What is done is never listed here: it is whatever the store's complete parts hold. A clip counts
as failed while its latest entry is not answered by a clip in the store.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from posebridge.cache.store import CueStore


class FailureLog:
    FILE_NAME = "failures.jsonl"

    def __init__(self, store_dir: str | os.PathLike):
        self.path = Path(store_dir) / self.FILE_NAME

    def record(self, clip_id: str, path: str, content_id: str | None, reason: str) -> None:
        entry = {"clip_id": clip_id, "path": str(path), "content_id": content_id, "reason": reason,
                 "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = (json.dumps(entry) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One O_APPEND write per entry: lines from concurrent workers never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def failures(self, done_ids: Iterable[str] = (), *, store: CueStore | None = None) -> list[dict]:
        """Latest entry per clip_id, sorted by clip_id, without clips that are done.

        An entry is dropped when its clip_id or content_id is in `done_ids`, or in `store`.
        """
        done = set(done_ids)
        if store is not None:
            records = store.clips()
            done |= {r.clip_id for r in records} | {r.content_id for r in records}
        latest: dict[str, dict] = {}
        for entry in self._entries():
            latest[entry["clip_id"]] = entry
        return [e for _, e in sorted(latest.items())
                if e["clip_id"] not in done and e.get("content_id") not in done]

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
