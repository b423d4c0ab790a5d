"""`posebridge cache compact STORE`: drop superseded copies, stale tmp folders and dead claims.

Safe while readers read and extractors write:
- A part holding live and superseded copies is rewritten without the superseded ones into a new
  part (the stored bytes copied as they are, the original `written_at` kept, so the copies rank
  against newer ones exactly as before), renamed in, and only then is the old part removed.
- A part is removed by first renaming it to a tmp name (atomic), then deleting the tmp folder.
  A reader holding the old index either finished its read before the rename, or finds the part
  gone and looks the clip up again (CueStore re-reads the index; see CueStore._read_span).
- A crash at any point leaves identical duplicates (resolved by rank) or a tmp folder (cleaned later).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from posebridge.cache.claims import DEFAULT_LEASE_S, remove_stale_claims
from posebridge.cache.store import CueStore, PartEntry, clean_stale_tmp, dir_bytes, new_tmp_dir, tmp_dirs
from posebridge.cache.writer import write_part


@dataclass
class CompactReport:
    parts_rewritten: int = 0
    parts_removed: int = 0
    copies_removed: int = 0
    tmp_removed: int = 0
    claims_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def line(self) -> str:
        return (f"compacted: {self.copies_removed} superseded copies removed ({self.parts_removed} parts removed, "
                f"{self.parts_rewritten} rewritten), {self.tmp_removed} stale tmp folders, {self.claims_removed} "
                f"dead claims; {self.bytes_before / 1e6:.2f} MB -> {self.bytes_after / 1e6:.2f} MB")


def compact(path: str | os.PathLike, lease_s: float = DEFAULT_LEASE_S) -> CompactReport:
    store = CueStore.open(path)
    report = CompactReport(bytes_before=dir_bytes(store.path))
    tmp_before = _count_tmp(store)
    clean_stale_tmp(store.path)
    clean_stale_tmp(store.parts_dir)
    report.tmp_removed = tmp_before - _count_tmp(store)

    index, tables = store.snapshot()  # one listing: a part landing meanwhile is not judged at all
    for part, ((written_at, _), entries) in tables.items():
        live = [e for e in entries if index.get(e.record.clip_id) is e]
        if len(live) == len(entries):
            continue
        if live:
            _rewrite(store, part, live, written_at)
            report.parts_rewritten += 1
        else:
            report.parts_removed += 1
        report.copies_removed += len(entries) - len(live)
        _retire(store, part)
    report.claims_removed = remove_stale_claims(store.path, lease_s)
    report.bytes_after = dir_bytes(store.path)
    return report


def _count_tmp(store: CueStore) -> int:
    return sum(len(tmp_dirs(parent)) for parent in (store.path, store.parts_dir))


def _rewrite(store: CueStore, part: str, live: list[PartEntry], written_at: float) -> None:
    """The live clips of `part`, stored bytes unchanged, as a new part of the same rank."""
    import zarr
    from zarr.storage import LocalStore

    clips = list(store.stored_clips(e.record.clip_id for e in live))
    worker = zarr.open_group(LocalStore(store.parts_dir / part, read_only=True), mode="r").attrs.asdict().get("worker", 0)
    name = f"{part.split('-')[0]}-{os.urandom(6).hex()}"
    write_part(store, name, clips, worker, written_at=written_at, extra_attrs={"compacted_from": part})


def _retire(store: CueStore, part: str) -> None:
    """Rename away (atomic: readers see the part whole, or not at all), then delete."""
    grave = new_tmp_dir(store.parts_dir)
    target = Path(grave) / part
    try:
        os.rename(store.parts_dir / part, target)
    except FileNotFoundError:  # another compaction got there first
        pass
    shutil.rmtree(grave, ignore_errors=True)
