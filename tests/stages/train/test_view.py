"""The memory-mapped training view of a cue store (stages/train/view.py), on small stores of
SYNTHETIC clips written with the real cache writer."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, store_dir
from posebridge.cache.writer import ShardWriter
from posebridge.stages.train import view as view_module
from posebridge.stages.train.data import load_store
from posebridge.stages.extract.synthetic import generate_clip, store_layout
from posebridge.stages.train.view import INDEX, VIEWS, load_view

T = 24


def add_clips(store: CueStore, labels, start: int = 0) -> None:
    """Two person slots (schema v2): a second person beside the first in even clips, absent (all zero) in odd ones."""
    with ShardWriter(store, shard_clips=4) as writer:
        for i, label in enumerate(labels, start):
            kp, score, feat, hm = generate_clip(label, i, 0)
            other = kp.copy()
            other[..., 0] += 0.1
            second = [other, score, feat[::-1], hm[::-1]] if i % 2 == 0 else [np.zeros_like(a) for a in (kp, score, feat, hm)]
            kp, score, feat, hm = (np.stack([a, b], axis=1) for a, b in zip((kp, score, feat, hm), second))
            writer.add(ClipRecord(clip_id=f"c{i:03d}", content_id=f"x{i}", label=label, width=640, height=480,
                                  meta={"split": "train" if i % 3 else "test"}),
                       ClipArrays(keypoints=kp, score=score, features=feat, heatmaps=hm))


@pytest.fixture
def store(tmp_path) -> CueStore:
    s = CueStore.create(store_dir(tmp_path, "v", "e" * 64), dataset="v", fingerprint="e" * 64, extractor={},
                        layout=dataclasses.replace(store_layout(), max_persons=2))
    add_clips(s, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    return s


def views(store: CueStore) -> list[str]:
    return sorted(p.name for p in (store.path / VIEWS).iterdir() if (p / INDEX).exists())


def test_view_rows_are_the_loaders_tensors_with_cues_on_their_uint8_grid(store):
    memory, view = load_store(store, T), load_view(store, T)
    assert view.clip_ids == memory.clip_ids and view.meta == memory.meta
    assert torch.equal(view.labels, memory.labels) and view.source_fingerprint == memory.source_fingerprint
    rows = torch.tensor([7, 0, 9, 3, 3])  # any order, repeats allowed: a random batch
    assert torch.equal(view.keypoints[rows], memory.keypoints[rows])
    assert torch.equal(view.confidence[rows], memory.confidence[rows])
    # Cues: rounded to the clip's own 255-step grid (<= half a step), against float16 in memory.
    second_present = view.confidence[rows][:, 1].flatten(1).gt(0).any(dim=1)  # [N, M, T, V]: person 2
    assert second_present.tolist() == [row % 2 == 0 for row in rows.tolist()]
    feats = memory.features[rows].float()
    axes = (1, 2, 3)  # range per clip and channel, over persons, frames and cue joints
    step = (feats.amax(dim=axes) - feats.amin(dim=axes)) / 255  # [b, C]
    error = (view.features[rows] - feats).abs().amax(dim=axes)
    assert (error <= 0.5 * step + 1e-3 * feats.abs().amax(dim=axes) + 1e-6).all()
    assert (view.heatmaps[rows] - memory.heatmaps[rows].float()).abs().max() <= 0.5 / 255 + 1e-3
    folder = store.path / VIEWS / views(store)[0]
    assert np.load(folder / "features.npy", mmap_mode="r").dtype == np.uint8
    assert np.load(folder / "heatmaps.npy", mmap_mode="r").dtype == np.uint8
    assert view.keypoints.shape == tuple(memory.keypoints.shape) and view.features.shape == tuple(memory.features.shape)


def test_a_second_load_reuses_the_view(store, monkeypatch):
    first = load_view(store, T)
    monkeypatch.setattr(view_module, "_write_view", lambda *a: pytest.fail("the view was written again"))
    again = load_view(CueStore.open(store.path), T)
    assert torch.equal(again.keypoints[torch.arange(10)], first.keypoints[torch.arange(10)])


def test_new_clips_or_other_settings_give_a_new_view_and_stale_views_go(store):
    load_view(store, T)
    (old,) = views(store)
    load_view(store, 2 * T)  # other loader settings: another view, the first stays usable
    assert len(views(store)) == 2 and old in views(store)
    add_clips(store, [5, 4], start=10)  # the clip set changes: a new view; the old ones can never be used
    grown = load_view(store, T)
    assert len(grown) == 12 and grown.clip_ids[-2:] == ["c010", "c011"]
    assert len(views(store)) == 1 and old not in views(store)
    index = json.loads((store.path / VIEWS / views(store)[0] / INDEX).read_text())
    assert index["key"]["num_frames"] == T


def test_a_crash_while_writing_leaves_no_view(store, monkeypatch):
    def crash(store_, num_frames, key, dest, records):
        (dest / "keypoints.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(view_module, "_write_view", crash)
    with pytest.raises(KeyboardInterrupt):
        load_view(store, T)
    assert not (store.path / VIEWS).exists() or views(store) == []
    monkeypatch.undo()
    assert len(load_view(store, T)) == 10


def test_reading_moves_to_the_asked_dtype_and_refuses_rows_outside(store):
    view = load_view(store, T)
    as_half = view.keypoints.to("cpu", torch.float16)
    assert as_half[torch.tensor([1])].dtype == torch.float16
    with pytest.raises(IndexError, match="row 10"):
        view.keypoints[torch.tensor([10])]


def test_a_slice_reads_the_same_rows_as_their_indices(store):
    """The frozen encoder reads a view in blocks (rows[a:b]); a block equals the rows by index."""
    view = load_view(store, T)
    for name in ("keypoints", "confidence", "features", "heatmaps"):
        rows = getattr(view, name)
        assert torch.equal(rows[1:3], rows[torch.tensor([1, 2])])
        assert torch.equal(rows[2:], rows[torch.arange(2, len(rows))])


def test_a_new_or_changed_clip_is_other_data(store):
    """The data fingerprint (runs, resume checks and the frozen-encoder cache key on it) covers the
    clip set, not only the extractor: a relabelled copy of a clip, or one more clip, changes it."""
    first = load_view(store, T).source_fingerprint
    assert load_store(store, T).source_fingerprint == first  # the in-memory loader agrees
    add_clips(store, [5], start=3)  # a newer copy of c003 with another label
    relabelled = load_view(store, T)
    assert len(relabelled) == 10 and relabelled.source_fingerprint != first
    add_clips(store, [5], start=10)
    assert load_view(store, T).source_fingerprint not in (first, relabelled.source_fingerprint)


def test_a_view_in_use_keeps_working_after_a_newer_clip_set_prunes_it(store):
    old = load_view(store, T)
    add_clips(store, [5, 4], start=10)
    load_view(store, T)  # deletes the old view's folder
    moved = old.keypoints.to("cpu", torch.float32)  # what to_device does for every seed's run
    assert moved[torch.arange(10)].shape[0] == 10


def test_a_clip_that_changes_while_the_view_is_written_takes_a_new_snapshot(store, monkeypatch):
    real, calls = view_module._write_view, []

    def racing(store_, num_frames, key, dest, records):
        calls.append(len(records))
        if len(calls) == 1:  # an extract lands a newer copy of a clip mid-write
            add_clips(store_, [4], start=0)
        return real(store_, num_frames, key, dest, records)

    monkeypatch.setattr(view_module, "_write_view", racing)
    ds = load_view(store, T)
    assert len(calls) == 2 and int(ds.labels[0]) == 4  # the second snapshot has the new copy
    index = json.loads((store.path / VIEWS / views(store)[0] / INDEX).read_text())
    assert index["key"]["clip_set"] == view_module.clip_set(store.clips())
