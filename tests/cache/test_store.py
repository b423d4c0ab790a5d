"""The cue cache on real zarr stores: round trips, resume safety, concurrency, the failure log."""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from posebridge.cache.manifest import FailureLog
from posebridge.cache.schema import COCO17, CacheLayout
from posebridge.cache.store import (
    TMP_PREFIX, ClipArrays, ClipRecord, CueStore, dir_bytes, list_stores, store_dir,
)
from posebridge.cache.writer import ShardWriter
from posebridge.cache.errors import UserError

M, V, VC, C, P = 2, 17, 3, 4, 3
LAYOUT = CacheLayout(skeleton="coco17", joint_names=COCO17.joint_names, cue_joints=(0, 9, 10), levels=("fpn64",),
                     feature_channels=C, heatmap_patch=P, feature_dtype="uint8", max_persons=M)
FP_A, FP_B = "a" * 64, "b" * 64


def make_clip(rng: np.random.Generator, t: int) -> ClipArrays:
    """Two person slots; the second is empty (all zeros, score 0) in about a third of the frames."""
    arrays = ClipArrays(
        keypoints=rng.random((t, M, V, 5), dtype=np.float32),
        score=rng.uniform(0.5, 1.0, (t, M)).astype(np.float32),
        features=np.cumsum(rng.normal(0, 1, (t, M, VC, C)), axis=0).astype(np.float32) * 10,
        heatmaps=rng.random((t, M, VC, P, P), dtype=np.float32),
    )
    absent = rng.random(t) < 0.35
    for name in ("keypoints", "score", "features", "heatmaps"):
        getattr(arrays, name)[absent, 1] = 0
    return arrays


def make_record(i: int, content: str | None = None) -> ClipRecord:
    return ClipRecord(clip_id=f"class{i % 2}/v{i:03d}.mp4", content_id=content or f"c{i:03d}", label=i % 2,
                      label_name=f"action {i % 2}", fps=25.0, height=480, width=640, meta={"subject": i})


def new_store(path: Path, fingerprint: str = FP_A, **layout_changes) -> CueStore:
    return CueStore.create(path, dataset="demo", fingerprint=fingerprint, extractor={"backend": "embedded"},
                           layout=dataclasses.replace(LAYOUT, **layout_changes))


def write(store: CueStore, clips: list[tuple[ClipRecord, ClipArrays]], shard_clips: int = 16, worker: int = 0) -> None:
    with ShardWriter(store, shard_clips=shard_clips, worker=worker) as writer:
        for record, arrays in clips:
            writer.add(record, arrays)


def assert_close(written: ClipArrays, read: ClipArrays) -> None:
    np.testing.assert_allclose(read.keypoints, written.keypoints, rtol=1e-3, atol=1e-3)  # float16
    np.testing.assert_allclose(read.score, written.score, rtol=1e-3, atol=1e-3)
    present = written.score > 0
    lo, hi = written.features[present].min(axis=(0, 1)), written.features[present].max(axis=(0, 1))
    bound = (hi - lo) / 255 / 2 + 1e-4 * (1 + np.abs(hi))  # half a quantisation step per channel
    assert (np.abs(read.features - written.features) <= bound).all()
    assert (read.features[~present] == 0).all()  # an empty slot reads back as exact zeros
    assert np.abs(read.heatmaps - written.heatmaps).max() <= 1 / 255
    assert read.features.dtype == read.heatmaps.dtype == np.float32


def test_round_trip_with_ragged_lengths(tmp_path):
    rng = np.random.default_rng(0)
    lengths = [1, 7, 64, 65, 130]
    clips = [(make_record(i), make_clip(rng, t)) for i, t in enumerate(lengths)]
    store = new_store(store_dir(tmp_path, "demo", FP_A))
    write(store, clips, shard_clips=2)  # parts of 2, 2 and 1 clips

    reopened = CueStore.open(store.path)
    assert len(reopened.part_names()) == 3
    records = reopened.clips()
    assert [r.clip_id for r in records] == sorted(r.clip_id for r, _ in clips)
    by_id = {r.clip_id: r for r in records}
    for (record, arrays), t in zip(clips, lengths):
        got = by_id[record.clip_id]
        assert (got.num_frames, got.content_id, got.label, got.label_name, got.meta) == \
               (t, record.content_id, record.label, record.label_name, record.meta)
        assert_close(arrays, reopened.read_clip(record.clip_id))
    assert {r.content_id for r in reopened.clips()} == {r.content_id for r, _ in clips}

    iterated = dict((r.clip_id, a) for r, a in reopened.iter_clips())
    assert set(iterated) == set(by_id)
    for record, arrays in clips:
        assert_close(arrays, iterated[record.clip_id])
    subset = [clips[3][0].clip_id, clips[1][0].clip_id]
    assert sorted(r.clip_id for r, _ in reopened.iter_clips(subset)) == sorted(subset)
    with pytest.raises(KeyError):
        reopened.read_clip("no/such.mp4")


def test_constant_channel_and_float16_features(tmp_path):
    rng = np.random.default_rng(1)
    arrays = make_clip(rng, 9)
    present = arrays.score > 0
    arrays.features[present, :, 0] = 3.5  # hi == lo must not divide by zero
    for dtype in ("uint8", "float16"):
        store = new_store(tmp_path / dtype, feature_dtype=dtype)
        write(store, [(make_record(0), arrays)])
        read = store.read_clip(make_record(0).clip_id)
        assert np.all(read.features[present][..., 0] == 3.5)
        assert_close(arrays, read)
    assert zarr.open_group(store.parts_dir / store.part_names()[0])["features"].dtype == np.float16


def test_writer_rejects_bad_clips(tmp_path):
    store = new_store(tmp_path / "s")
    writer = ShardWriter(store)
    with pytest.raises(ValueError, match="zero-frame"):
        writer.add(make_record(0), make_clip(np.random.default_rng(0), 0))
    wrong = make_clip(np.random.default_rng(0), 4)
    wrong.features = wrong.features[:, :, :2]
    with pytest.raises(ValueError, match="features has shape"):
        writer.add(make_record(0), wrong)


def test_writer_flushes_when_an_exception_propagates(tmp_path):
    store = new_store(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with ShardWriter(store, shard_clips=10) as writer:
            writer.add(make_record(0), make_clip(np.random.default_rng(0), 3))
            raise RuntimeError("decoder crashed on the next clip")
    assert [r.clip_id for r in store.clips()] == [make_record(0).clip_id]
    assert writer.bytes_written == dir_bytes(store.parts_dir / store.part_names()[0])


def test_fingerprint_mismatch_leaves_store_untouched(tmp_path):
    path = tmp_path / "s"
    write(new_store(path), [(make_record(0), make_clip(np.random.default_rng(0), 5))])
    before = sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*"))

    with pytest.raises(UserError) as err:
        new_store(path, fingerprint=FP_B)
    assert str(path) in str(err.value) and FP_A in str(err.value) and FP_B in str(err.value)
    assert "--cache-dir" in str(err.value)
    assert sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*")) == before
    assert [r.content_id for r in new_store(path).clips()] == ["c000"]  # same fingerprint: resumes


def test_open_refuses_what_is_not_a_store(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path)):
        CueStore.open(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a cue cache"):
        new_store(tmp_path)

    path = tmp_path / "old"
    new_store(path)
    zarr.open_group(path / "store.zarr").attrs["schema_version"] = 99
    with pytest.raises(UserError, match="schema version 99"):
        CueStore.open(path)


def test_stale_tmp_part_is_ignored_and_cleaned(tmp_path):
    store = new_store(tmp_path / "s")
    write(store, [(make_record(0), make_clip(np.random.default_rng(0), 5))])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = store.parts_dir / f"{TMP_PREFIX}{host}-{int(dead.stdout)}-0123456789ab"
    live = store.parts_dir / f"{TMP_PREFIX}{host}-{os.getpid()}-0123456789ab"
    for tmp in (stale, live):  # a half-written part from a killed writer, and one still being written
        tmp.mkdir()
        (tmp / "zarr.json").write_text("{half")

    assert [r.clip_id for r in CueStore.open(store.path).clips()] == [make_record(0).clip_id]
    new_store(store.path)  # open-for-write cleans
    assert not stale.exists()
    assert live.exists()


def test_duplicate_clip_across_parts_is_kept_once(tmp_path):
    rng = np.random.default_rng(2)
    store = new_store(tmp_path / "s")
    write(store, [(make_record(0), make_clip(rng, 5)), (make_record(1), make_clip(rng, 6))], worker=2)
    write(store, [(make_record(1), make_clip(rng, 6))], worker=1)  # two runs raced on clip 1
    newer = make_clip(rng, 8)
    # Clip 0's video changed; its new part sorts first by name, but is the newer one.
    write(store, [(make_record(0, content="c000-reencoded"), newer)], worker=0)

    for reader in (store, CueStore.open(store.path)):
        records = reader.clips()
        assert [r.clip_id for r in records] == [make_record(0).clip_id, make_record(1).clip_id]
        assert {r.content_id for r in reader.clips()} == {"c000-reencoded", "c001"}
        assert_close(newer, reader.read_clip(make_record(0).clip_id))
        assert len(list(reader.iter_clips())) == 2


def _worker(path: str, worker: int, ids: list[int]) -> None:
    store = CueStore.open(path)
    rng = np.random.default_rng(worker)
    with ShardWriter(store, shard_clips=2, worker=worker) as writer:
        for i in ids:
            writer.add(make_record(i), make_clip(rng, 10 + i))


def test_concurrent_writers(tmp_path):
    store = new_store(tmp_path / "s")
    jobs = [(str(store.path), w, list(range(w, 15, 3))) for w in range(3)]  # 5 clips each: parts of 2, 2, 1
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.starmap(_worker, jobs)
    records = store.clips()
    assert [r.clip_id for r in records] == sorted(make_record(i).clip_id for i in range(15))
    assert all(r.num_frames == 10 + int(r.content_id[1:]) for r in records)
    assert len(store.part_names()) == 9
    assert sum(1 for _ in store.iter_clips()) == 15
    assert not list(store.parts_dir.glob(f"{TMP_PREFIX}*"))


def test_info_reports_bytes(tmp_path):
    store = new_store(tmp_path / "s")
    write(store, [(make_record(i), make_clip(np.random.default_rng(i), 150)) for i in range(4)], shard_clips=2)
    FailureLog(store.path).record("broken.mp4", "/videos/broken.mp4", None, "no frames decoded")
    info = store.info()
    assert (info["n_clips"], info["n_frames"], info["n_parts"], info["n_failures"]) == (4, 600, 2, 1)
    assert info["bytes_on_disk"] == dir_bytes(store.path / "store.zarr") > 0
    assert info["bytes_per_clip"] == info["bytes_on_disk"] / 4
    assert info["bytes_per_300_frames"] == pytest.approx(info["bytes_on_disk"] / 2)
    assert info["fingerprint"] == FP_A and info["layout"] == LAYOUT.to_attrs() and info["schema_version"] == 2


def test_list_stores(tmp_path):
    a = new_store(store_dir(tmp_path, "demo", FP_A))
    b = new_store(store_dir(tmp_path, "ntu60", FP_B))
    assert list_stores(tmp_path) == [a.path, b.path]
    assert list_stores(tmp_path, "ntu60") == [b.path]
    with pytest.raises(UserError):
        store_dir(tmp_path, "../escape", FP_A)


def test_failure_log_records_and_filters(tmp_path):
    store = new_store(tmp_path / "s")
    log = FailureLog(store.path)
    log.record("a.mp4", "/v/a.mp4", None, "cannot open")
    log.record("b.mp4", "/v/b.mp4", "cb", "zero frames")
    log.record("a.mp4", "/v/a.mp4", "ca", "decoder error at frame 12")  # a retry failed differently
    with open(log.path, "a") as f:
        f.write('{"clip_id": "torn')  # killed mid-write

    assert [(e["clip_id"], e["reason"]) for e in log.failures()] == \
           [("a.mp4", "decoder error at frame 12"), ("b.mp4", "zero frames")]
    log.resolve("b.mp4", "cb2")  # b was fixed and extracted on a later run
    assert [e["clip_id"] for e in log.failures()] == ["a.mp4"]
    log.record("b.mp4", "/v/b.mp4", "cb3", "truncated")  # then its file broke again: stale arrays
    assert [e["clip_id"] for e in log.failures()] == ["a.mp4", "b.mp4"]
