"""New labels for cached clips, without running the pose model again.

A clip's arrays depend on its bytes alone; its labels (class id, name, meta) come from the folder
layout or the annotation file, and change when, say, a class folder is added and every later class
is renumbered. Such a clip is copied, stored bytes unchanged, into a new part under its new record:
the newer part wins (as for a re-extracted clip), so old and new numbering never mix.
"""
from __future__ import annotations

import dataclasses
import uuid

from posebridge.cache.store import ClipRecord, CueStore
from posebridge.cache.writer import write_part


def relabel(store: CueStore, records: list[ClipRecord], shard_clips: int = 16, worker: int = 0,
            on_written=None) -> int:
    """Write `records` (the clips' new records: same clip_id and content_id as stored) over the stored
    bytes of those clips, `shard_clips` per part. on_written(records) runs once a part is in place.
    Returns the clips relabelled."""
    wanted = {r.clip_id: r for r in records}
    batch, done = [], 0

    def flush() -> None:
        nonlocal batch, done
        if batch:
            write_part(store, f"w{worker:03d}-{uuid.uuid4().hex[:12]}", batch, worker,
                       extra_attrs={"relabelled": True})
            done += len(batch)
            if on_written is not None:
                on_written([record for record, _ in batch])
            batch = []

    for old, stored in store.stored_clips(list(wanted)):
        new = wanted[old.clip_id]
        if new.content_id != old.content_id:
            raise ValueError(f"{old.clip_id}: relabelling keeps the stored bytes; its content changed")
        batch.append((dataclasses.replace(new, num_frames=old.num_frames), stored))
        if len(batch) >= shard_clips:
            flush()
    flush()
    return done
