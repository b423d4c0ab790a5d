"""The SYNTHETIC benchmark: generator, split, texts, and its store in the real cue cache."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.store import CueStore
from posebridge.stages.extract.config import BLAZEPOSE_JOINTS, BODY13
from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import get_split
from posebridge.stages.splits.split_file import read_split_file
from posebridge.stages.extract import synthetic
from posebridge.stages.train.data import load_store
from posebridge.stages.train.text import PART_NAMES, TEMPORAL_NAMES, class_texts

CLIPS_PER_CLASS = 20  # enough test clips per class for the classifier checks, quick to write
WRISTS = [BODY13.index(15), BODY13.index(16)]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    # The same folder as tests/stages/train/test_data.py uses: the second module reuses the store.
    return synthetic.write_synthetic_store(tmp_path_factory.getbasetemp() / "synthetic_cache", CLIPS_PER_CLASS)


def test_same_seed_same_clip_other_seed_other_clip():
    first = synthetic.generate_clip(label=7, index=3, seed=0)
    again = synthetic.generate_clip(label=7, index=3, seed=0)
    other = synthetic.generate_clip(label=7, index=3, seed=1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][..., :2], other[0][..., :2])


def test_clip_follows_the_cache_schema():
    keypoints, score, features, heatmaps = synthetic.generate_clip(label=0, index=0)
    t = len(keypoints)
    assert synthetic.MIN_FRAMES <= t <= synthetic.MAX_FRAMES
    assert keypoints.shape == (t, len(BLAZEPOSE_JOINTS), 5) and keypoints.dtype == np.float32
    assert score.shape == (t,) and features.shape == (t, len(BODY13), 96) and heatmaps.shape == (t, len(BODY13), 3, 3)
    assert 0 < keypoints[..., :2].min() and keypoints[..., :2].max() < 1  # inside the image
    assert keypoints[..., 3].min() >= 0.9 and keypoints[..., 4].min() >= 0.97
    assert 0 <= heatmaps.min() and heatmaps.max() <= 1
    assert np.isfinite(features).all()


def test_standing_pose_is_upright():
    keypoints = synthetic.generate_clip(label=synthetic.synthetic_classes().index(
        synthetic.SyntheticClass("left leg", "swing", "slowly", "holding a cup")), index=0)[0]
    y = keypoints[..., 1].mean(axis=0)
    assert y[0] < y[11] < y[23] < y[25] < y[27]  # nose above shoulder above hip above knee above ankle


def test_only_the_named_part_moves():
    classes = synthetic.synthetic_classes()
    ends = {"left arm": 15, "right arm": 16, "left leg": 27}  # wrist, wrist, ankle
    for label, cls in enumerate(classes):
        travel = synthetic.generate_clip(label, index=1)[0][..., :2].std(axis=0).sum(axis=-1)  # [V]
        others = [travel[j] for part, j in ends.items() if part != cls.part]
        assert travel[ends[cls.part]] > 3 * max(others), cls.name


def test_context_never_reaches_the_skeleton():
    cup = synthetic.SyntheticClass("right arm", "raise", "quickly", "holding a cup")
    phone = dataclasses.replace(cup, context="holding a phone")
    skeletons = [synthetic.make_skeleton(c, 60, np.random.default_rng(5)) for c in (cup, phone)]
    np.testing.assert_array_equal(skeletons[0][0], skeletons[1][0])
    cues = [synthetic.make_cues(c, 60, skeletons[0][0][..., 3], np.random.default_rng(5)) for c in (cup, phone)]
    holding_wrist = BODY13.index(16)
    assert not np.allclose(cues[0][0][:, holding_wrist], cues[1][0][:, holding_wrist])
    # Away from the hands the cue arrays are identical too.
    np.testing.assert_array_equal(cues[0][0][:, 0], cues[1][0][:, 0])


def test_split_recombines_seen_attribute_values():
    split = synthetic.synthetic_split()
    classes = synthetic.synthetic_classes()
    assert split.name == "synthetic_zsl" and split.dataset == "synthetic"
    # an ordinary split file: its sides are the store's meta["split"] values
    assert split.protocol == "sides" and split.train_side.values == ("train",) and split.test_side.values == ("test",)
    assert set(split.seen).isdisjoint(split.unseen)
    assert sorted(split.seen + split.unseen) == list(range(len(classes)))
    assert 24 <= len(classes) <= 36 and len(split.unseen) == round(0.25 * len(classes))
    seen = [classes[i] for i in split.seen]
    for i in split.unseen:
        u = classes[i]
        for attr in ("part", "motion", "tempo", "context"):
            assert any(getattr(s, attr) == getattr(u, attr) for s in seen), (u.name, attr)
        assert any((s.part, s.motion) == (u.part, u.motion) for s in seen), u.name
    unseen_skeletons = [(c.part, c.motion, c.tempo) for c in (classes[i] for i in split.unseen)]
    context_only_pairs = {s for s in unseen_skeletons if unseen_skeletons.count(s) == 2}
    assert len(context_only_pairs) >= 2
    assert list(split.class_names) == [c.name for c in classes]
    shipped = get_split("synthetic_zsl")  # the generator's split = the shipped file's, but for where it came from
    assert dataclasses.replace(shipped, source=split.source) == split and "shipped" in shipped.source


def test_texts_are_composed_from_the_attributes():
    split = synthetic.synthetic_split()
    texts = class_texts(split)
    classes = synthetic.synthetic_classes()
    assert [t.name for t in texts] == list(split.class_names)
    for t, cls in zip(texts, classes):
        assert set(t.parts) == set(PART_NAMES) and set(t.temporal) == set(TEMPORAL_NAMES)
        assert cls.context.removeprefix("holding ") in t.parts["hands"]
        assert cls.part in t.description and cls.tempo in t.description
        assert all(cls.name in template for template in t.templates)
    assert len({t.description for t in texts}) == len(texts)
    cup, phone = texts[0], texts[1]  # a context-only pair: the texts differ in the object alone
    assert cup.parts["legs"] == phone.parts["legs"] and cup.parts["hands"] != phone.parts["hands"]


def test_store_is_written_once_and_reads_back(tmp_path):
    path = synthetic.write_synthetic_store(tmp_path, clips_per_class=2, seed=3)
    store = CueStore.open(path)
    parts = store.part_names()
    assert store.attrs["dataset"] == "synthetic" and store.attrs["extractor"]["backend"] == "synthetic"
    assert store.layout == synthetic.store_layout()
    records = store.clips()
    assert len(records) == 2 * len(synthetic.synthetic_classes())
    assert {r.meta["split"] for r in records} == {"train", "test"}

    record = next(r for r in records if r.label == 5)
    keypoints, score, features, heatmaps = synthetic.generate_clip(5, int(record.clip_id[-4:]), seed=3)
    stored = store.read_clip(record.clip_id)
    assert store.layout.max_persons == 1 and stored.keypoints.shape == (len(keypoints), 1, 33, 5)
    np.testing.assert_allclose(stored.keypoints[:, 0], keypoints, atol=1e-3)  # float16 on disk
    span = features.max(axis=(0, 1)) - features.min(axis=(0, 1))
    assert np.all(np.abs(stored.features[:, 0] - features) <= span / 255 + 1e-5)  # uint8 on disk
    np.testing.assert_allclose(stored.heatmaps[:, 0], heatmaps, atol=1 / 255)

    assert synthetic.write_synthetic_store(tmp_path, clips_per_class=2, seed=3) == path
    assert CueStore.open(path).part_names() == parts  # nothing rewritten
    assert synthetic.write_synthetic_store(tmp_path, clips_per_class=2, seed=4) != path


def test_interrupted_store_is_completed(tmp_path):
    path = synthetic.write_synthetic_store(tmp_path, clips_per_class=1)
    store = CueStore.open(path)
    shutil.rmtree(store.parts_dir / store.part_names()[0])  # as if that part was never written
    assert len(CueStore.open(path).clips()) < len(synthetic.synthetic_classes())
    synthetic.write_synthetic_store(tmp_path, clips_per_class=1)
    assert len(CueStore.open(path).clips()) == len(synthetic.synthetic_classes())


def _context_pair_accuracy(x: np.ndarray, labels: np.ndarray, is_train: np.ndarray) -> float:
    """Nearest-centroid accuracy within each context-only pair (chance: 0.5), pooled over pairs."""
    classes = synthetic.synthetic_classes()
    correct, total = 0, 0
    for a, cls in enumerate(classes):
        if cls.context != synthetic.CONTEXTS[0]:
            continue
        b = classes.index(dataclasses.replace(cls, context=synthetic.CONTEXTS[1]))
        centroids = np.stack([x[is_train & (labels == c)].mean(axis=0) for c in (a, b)])
        test = ~is_train & np.isin(labels, (a, b))
        nearest = np.argmin(((x[test, None] - centroids[None]) ** 2).sum(axis=-1), axis=1)
        correct += int((np.array([a, b])[nearest] == labels[test]).sum())
        total += int(test.sum())
    return correct / total


def test_only_the_cues_separate_context_only_pairs(store_path):
    """The property the demo's ablation rests on: skeleton-only cannot tell the object, cues can."""
    ds = load_store(store_path, num_frames=32)
    labels = ds.labels.numpy()
    is_train = np.array([m["split"] == "train" for m in ds.meta])
    skeleton = ds.keypoints[:, 0].mean(dim=1).flatten(1).numpy()  # the one person slot
    wrist_features = ds.features[:, 0, :, WRISTS].mean(dim=1).flatten(1).numpy()
    wrist_heatmaps = ds.heatmaps[:, 0, :, WRISTS].mean(dim=1).flatten(1).numpy()
    assert _context_pair_accuracy(skeleton, labels, is_train) < 0.65
    assert _context_pair_accuracy(wrist_features, labels, is_train) > 0.75
    assert _context_pair_accuracy(wrist_heatmaps, labels, is_train) > 0.8


def test_store_comes_with_its_split_file(store_path):
    from posebridge.stages.splits.split_file import read_split_file
    from posebridge.stages.train.data import partition

    split = read_split_file(Path(store_path) / synthetic.SPLIT_FILE).split(0)
    assert (split.class_names, split.seen, split.unseen) == (lambda s: (s.class_names, s.seen, s.unseen))(
        get_split("synthetic_zsl"))
    ds = load_store(store_path, num_frames=8)
    from_file, published = partition(ds, split), partition(ds, get_split("synthetic_zsl"))
    assert from_file.keys() == published.keys()
    for key in from_file:
        np.testing.assert_array_equal(from_file[key], published[key])


def test_the_synthetic_set_is_made_by_its_command_then_found_like_any_store(tmp_path, capsys):
    """No special case in the run driver: without a store, training names the command that makes
    it (the split file's get_data); `posebridge synthetic` writes it; then the split finds it by
    its dataset name, as an extracted store is found."""
    from posebridge.pipeline import cli
    from posebridge.pipeline.run import find_store

    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=rf"make it first: posebridge synthetic --cache-dir {cache}"):
        find_store(get_split("synthetic_zsl"), cache)
    assert not cache.exists() or not any(cache.rglob("*.json"))  # the error wrote nothing
    with pytest.raises(SystemExit) as done:
        cli.main(["synthetic", "--cache-dir", str(cache), "--clips-per-class", "1"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    path = find_store(get_split("synthetic_zsl"), cache)
    assert f"synthetic store: {path} (36 clips)" in out and "posebridge train --split synthetic_zsl" in out
    assert path == synthetic.write_synthetic_store(cache, clips_per_class=1)
    with pytest.raises(SystemExit):  # a second store (another size) beside it: the command says to pick one
        cli.main(["synthetic", "--cache-dir", str(cache), "--clips-per-class", "2"])
    second = synthetic.write_synthetic_store(cache, clips_per_class=2)
    assert f"--store {second}  (1 other synthetic store(s) beside it: {path}" in capsys.readouterr().out
    with pytest.raises(UserError, match="2 caches"):
        find_store(get_split("synthetic_zsl"), cache)
    assert read_split_file(path / synthetic.SPLIT_FILE).split(0).unseen == get_split("synthetic_zsl").unseen
