"""`cache info` (live vs superseded) and `cache compact`, on a store extracted from the real demo clips.

Superseded copies are made the way a second run makes them: the same clips written again into
newer parts (here straight through the writer, so no second extraction is needed).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.claims import ClaimBook, list_claims
from posebridge.cache.compact import compact
from posebridge.cache.store import TMP_PREFIX, CueStore, dir_bytes
from posebridge.cache.writer import ShardWriter
from posebridge.stages.extract.config import ExtractConfig, RunSettings
from posebridge.stages.extract.run import extract


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, demo_videos, models_dir) -> Path:
    root = tmp_path_factory.mktemp("compact")
    summary = extract(demo_videos[0].parent, "demo", cache_dir=root, config=ExtractConfig(max_frames=12),
                      run=RunSettings(workers=1, num_threads=1), models_dir=models_dir, progress=False)
    assert summary.done == 4
    return summary.store


@pytest.fixture
def store_with_copies(extracted, tmp_path) -> Path:
    """One part [c0 c1 c2 c3], then newer parts [c0 c1], [c2], [c2]: 4 superseded copies."""
    path = tmp_path / "store"
    shutil.copytree(extracted, path)
    store = CueStore.open(path)
    clips = dict((r.clip_id, (r, a)) for r, a in store.iter_clips())
    ids = sorted(clips)
    for batch in ([ids[0], ids[1]], [ids[2]], [ids[2]]):
        with ShardWriter(store, shard_clips=len(batch)) as writer:
            for clip_id in batch:
                writer.add(*clips[clip_id])
    return path


def _snapshot(store: CueStore) -> dict:
    return {r.clip_id: a for r, a in store.iter_clips()}


def _assert_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for clip_id in a:
        for name, value in vars(a[clip_id]).items():
            np.testing.assert_array_equal(value, getattr(b[clip_id], name), err_msg=f"{clip_id} {name}")


def test_info_tells_live_from_superseded_and_stale(store_with_copies):
    store = CueStore.open(store_with_copies)
    (store.parts_dir / f"{TMP_PREFIX}{os.uname().nodename}-999999999-dead").mkdir()  # a killed writer's
    book = ClaimBook(store_with_copies)
    assert book.try_acquire("live-claim")
    info = store.info()
    assert (info["n_clips"], info["n_superseded_copies"], info["n_parts"]) == (4, 4, 4)
    assert info["superseded_frames"] == 4 * 12 and info["n_frames"] == 4 * 12
    assert info["bytes_live"] + info["bytes_superseded"] == pytest.approx(info["bytes_on_disk"], abs=1)
    assert info["bytes_per_clip"] == pytest.approx(info["bytes_live"] / 4, abs=1)
    assert (info["n_tmp_folders"], info["n_claims_active"], info["n_claims_stale"]) == (1, 1, 0)


def test_compact_keeps_every_readers_data_and_drops_the_rest(store_with_copies, tmp_path):
    before = CueStore.open(store_with_copies)
    expected = _snapshot(before)  # what any reader sees: the newest copy of each clip
    stale_reader = CueStore.open(store_with_copies)
    stale_reader.clips()  # its index now points into parts that compaction removes
    (before.parts_dir / f"{TMP_PREFIX}{os.uname().nodename}-999999999-dead").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ClaimBook(store_with_copies).path("gone").write_text(
        f'{{"clip_id": "gone", "host": "{os.uname().nodename}", "boot_id": "{ClaimBook(tmp_path).owner.boot_id}", '
        f'"pid": {dead.pid}, "start": null, "token": "t"}}')
    size_before = dir_bytes(store_with_copies)

    report = compact(store_with_copies)

    assert (report.copies_removed, report.parts_rewritten, report.parts_removed) == (4, 1, 1)
    assert (report.tmp_removed, report.claims_removed) == (1, 1)
    assert report.bytes_after < size_before
    for clip_id, arrays in expected.items():  # the old index still resolves, to identical data
        _assert_equal({clip_id: stale_reader.read_clip(clip_id)}, {clip_id: arrays})
    _assert_equal(_snapshot(stale_reader), expected)
    after = CueStore.open(store_with_copies)
    _assert_equal(_snapshot(after), expected)
    info = after.info()
    assert (info["n_clips"], info["n_superseded_copies"], info["n_parts"], info["n_tmp_folders"]) == (4, 0, 3, 0)
    assert list_claims(store_with_copies) == []
    assert compact(store_with_copies).copies_removed == 0  # nothing left to do


def test_a_reader_running_through_a_compaction_reads_identical_data(store_with_copies):
    expected = _snapshot(CueStore.open(store_with_copies))
    reader = CueStore.open(store_with_copies)
    reader.clips()
    stop, reads, errors = threading.Event(), [0], []

    def read_loop() -> None:
        try:
            while not stop.is_set():
                _assert_equal(_snapshot(reader), expected)
                for clip_id in expected:
                    _assert_equal({clip_id: reader.read_clip(clip_id)}, {clip_id: expected[clip_id]})
                reads[0] += 1
        except BaseException as err:  # reported in the test's thread
            errors.append(err)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        code = "import sys; from posebridge.cache.compact import compact; print(compact(sys.argv[1]).line())"
        out = subprocess.run([sys.executable, "-c", code, str(store_with_copies)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert "4 superseded copies removed" in out.stdout
        done = reads[0]
        while reads[0] < done + 2 and not errors and thread.is_alive():  # a few full reads after it, too
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    assert reads[0] >= 2


def test_a_part_removed_after_its_arrays_were_opened_is_never_read_as_zeros(store_with_copies, monkeypatch):
    """zarr reads a missing shard file as fill values (zeros), without an error: the worst moment
    for a compaction is after a reader opened a part's arrays and before it read them."""
    store = CueStore.open(store_with_copies)
    expected = _snapshot(store)
    index = store.refresh()
    doomed = {part for part, (_, entries) in store.part_tables().items()
              if any(index.get(e.record.clip_id) is not e for e in entries)}
    reader = CueStore.open(store_with_copies)
    reader.clips()
    original, compacted = CueStore._open_part, []

    class Opened:  # the part's arrays, opened (metadata read) while the part was still in place
        def __init__(self, group):
            self.attrs = group.attrs
            self._arrays = {name: group[name] for name in group.array_keys()}

        def __getitem__(self, name):
            return self._arrays[name]

    def open_then_compact(self, part):
        opened = Opened(original(self, part))
        if part in doomed and not compacted:
            compacted.append(True)
            compact(self.path)  # removes the very part whose arrays were just opened
        return opened

    monkeypatch.setattr(CueStore, "_open_part", open_then_compact)
    _assert_equal(_snapshot(reader), expected)
    assert compacted
    monkeypatch.undo()
    assert CueStore.open(store_with_copies).info()["n_superseded_copies"] == 0


def test_a_dataset_name_is_found_even_when_a_folder_of_that_name_is_in_the_way(extracted, tmp_path, monkeypatch):
    """`cache info demo` next to a `demo/` videos folder means the dataset's store, not the folder."""
    from posebridge.pipeline.cli import resolve_store
    from posebridge.cache.errors import UserError

    cache = extracted.parent.parent  # <cache_root>/demo/<fingerprint>
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. the videos folder the dataset is named after
    assert resolve_store("demo", cache) == extracted
    assert resolve_store(str(extracted), cache) == extracted
    with pytest.raises(UserError, match=r"cue cache /no/such/store does not exist"):
        CueStore.open(resolve_store("/no/such/store", cache))
    with pytest.raises(UserError, match=r"no dataset of that name under"):
        resolve_store("nosuchdataset", cache)
