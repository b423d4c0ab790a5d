"""Does a store hold every clip of a videos folder? Used by `extract`'s summary and `cache info --videos`.

A clip is held when its current bytes (content id) are cached with its current labels; a clip
whose file changed, or whose labels changed (a class folder added), is not.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from posebridge.cache.manifest import FailureLog
from posebridge.cache.store import ClipRecord, CueStore
from posebridge.cache.atomic import atomic_path
from posebridge.stages.datasets import ClipSpec, scan
from posebridge.cache.fingerprint import canonical_json, content_id


def labels_key(clip: ClipSpec | ClipRecord) -> str:
    return canonical_json([clip.label, clip.label_name, clip.meta])


def content_ids(specs: list[ClipSpec], memo_path: Path) -> dict[str, str]:
    """content_id per clip_id, memoised on (size, mtime) so re-runs do not re-read every video.

    The memo only saves reading; the ids themselves depend on bytes alone. Concurrent runs each
    replace the memo whole (atomically); one may drop another's entries, which only costs a re-read.
    """
    try:
        memo = json.loads(memo_path.read_text())
    except (FileNotFoundError, ValueError):
        memo = {}
    out, changed = {}, False
    for spec in specs:
        try:
            st = os.stat(spec.path)
        except OSError:
            continue  # vanished file: the extractor reports it
        key = [st.st_size, st.st_mtime_ns]
        hit = memo.get(spec.clip_id)
        if hit and hit[:2] == key:
            out[spec.clip_id] = hit[2]
        else:
            out[spec.clip_id] = content_id(spec.path)
            memo[spec.clip_id] = [*key, out[spec.clip_id]]
            changed = True
    if changed:
        with atomic_path(memo_path) as tmp:
            tmp.write_text(json.dumps(memo))
    return out


def is_held(store: CueStore, spec: ClipSpec, cid: str | None) -> bool:
    record = store.lookup(spec.clip_id)
    return record is not None and record.content_id == cid and labels_key(record) == labels_key(spec)


@dataclass
class Coverage:
    videos: Path
    total: int  # clips in the folder
    held: int  # of them, cached with current bytes and labels
    failed: list[str] = field(default_factory=list)  # not held, and their latest attempt failed
    missing: list[str] = field(default_factory=list)  # not held, not failed: not extracted (yet)

    @property
    def complete(self) -> bool:
        return self.held == self.total

    def line(self) -> str:
        state = "complete" if self.complete else f"INCOMPLETE: {len(self.missing)} not extracted yet"
        text = f"coverage: {self.held} of {self.total} clips of {self.videos} in the store ({state}; " \
               f"{len(self.failed)} failed)"
        if self.missing:
            text += f"; first missing: {', '.join(self.missing[:3])}"
        return text


def coverage(store: CueStore, videos: Path, specs: list[ClipSpec], ids: dict[str, str]) -> Coverage:
    failed = {f["clip_id"] for f in FailureLog(store.path).failures()}
    out = Coverage(Path(videos), len(specs), 0)
    for spec in specs:
        if is_held(store, spec, ids.get(spec.clip_id)):
            out.held += 1
        elif spec.clip_id in failed or spec.clip_id not in ids:
            out.failed.append(spec.clip_id)
        else:
            out.missing.append(spec.clip_id)
    return out


def folder_coverage(store: CueStore, videos: Path, annotations: Path | None = None) -> Coverage:
    """Scan `videos` as the store's dataset was scanned (same name, same annotations)."""
    specs = scan(Path(videos), store.attrs["dataset"], annotations)
    return coverage(store, videos, specs, content_ids(specs, store.path / "content_ids.json"))
