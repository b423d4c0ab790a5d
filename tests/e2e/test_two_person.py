"""Two people per frame end to end, on real footage composed side by side (conftest.two_person_clip):
stage 1 keeps both with stable identities, stage 2 and the PYSKL export read them."""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.cache.export import export_pyskl
from posebridge.cache.pyskl import read_pyskl
from posebridge.cache.store import CueStore
from posebridge.stages.extract.config import ExtractConfig, RunSettings
from posebridge.stages.train.data import load_store
from posebridge.stages.extract import tracking
from posebridge.stages.extract.run import extract

HIPS = [23, 24]


@pytest.fixture(scope="module")
def stores(two_person_clip, models_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for m in (1, 2):
        summary = extract(two_person_clip.parent, f"two{m}", cache_dir=cache, config=ExtractConfig(max_persons=m),
                          run=RunSettings(workers=1), models_dir=models_dir, progress=False)
        assert summary.done == 1 and summary.failed == 0
        store = CueStore.open(summary.store)
        (record, arrays), = store.iter_clips()
        out[m] = (store, record, arrays)
    return out


def test_both_people_are_kept_in_their_own_slots(stores):
    store, record, arrays = stores[2]
    assert store.layout.max_persons == 2 and arrays.keypoints.shape == (40, 2, 33, 5)
    assert (arrays.score > 0.5).all()  # both people, every frame
    hip_x = arrays.keypoints[:, :, HIPS, 0].mean(axis=2)  # [T, 2], x / frame width
    left = hip_x[0].argmin()
    # Identity: the person in a slot never changes sides (the halves meet at x = 0.5).
    assert (hip_x[:, left] < 0.5).all() and (hip_x[:, 1 - left] > 0.5).all()
    # Main actor first: slot 0 holds the larger summed score.
    assert arrays.score[:, 0].sum() >= arrays.score[:, 1].sum()


def test_max_persons_1_follows_one_of_them_exactly_as_before(stores):
    _, _, one = stores[1]
    _, _, two = stores[2]
    assert one.keypoints.shape == (40, 1, 33, 5) and (one.score > 0.5).all()
    # The single tracked person is one of the two slots, bit for bit (float16 on disk).
    matches = [np.array_equal(one.keypoints[:, 0], two.keypoints[:, m]) for m in (0, 1)]
    assert sum(matches) == 1


def test_stage2_reads_both_people_in_the_main_actors_frame(stores):
    store, _, _ = stores[2]
    ds = load_store(store, num_frames=16)
    assert ds.keypoints.shape == (1, 2, 16, 33, 3) and ds.confidence.shape == (1, 2, 16, 33)
    assert ds.features.shape[:3] == (1, 2, 16) and ds.heatmaps.shape[:3] == (1, 2, 16)
    mid_hip = ds.keypoints[0, :, :, HIPS, 0].mean(dim=-1)  # [2, T] in the main actor's torso units
    assert mid_hip[0].abs().max() < 0.5  # the main actor is centred
    assert mid_hip[1].abs().min() > 1.0  # the other stands well to one side, and stays there


def test_pyskl_export_holds_both_people_in_coco17(stores, tmp_path):
    store, record, arrays = stores[2]
    export_pyskl(store, tmp_path / "two.pkl")
    (ann,) = read_pyskl(tmp_path / "two.pkl")["annotations"]
    assert ann["keypoint"].shape == (2, 40, 17, 2) and ann["keypoint_score"].shape == (2, 40, 17)
    np.testing.assert_allclose(ann["keypoint"][1, :, 0, 0], arrays.keypoints[:, 1, 0, 0] * record.width, rtol=1e-6)


def test_a_person_who_leaves_and_comes_back_gets_their_slot_back(tmp_path, demo_videos, models_dir):
    """REAL footage, composed: the right half is blanked in frames 12..19 (that person is gone)."""
    import av

    from tests.conftest import _load_bench_module
    from posebridge.stages.extract.backends import make_backend
    from posebridge.stages.extract.frames import YUV420Frame

    by_name = {p.name: p for p in demo_videos}
    clip = _load_bench_module("two_person_clip").write_side_by_side(
        by_name["cam01.mp4"], by_name["cam03.mp4"], tmp_path / "gap.mp4", frames=40, height=640,
        hide_right=range(12, 20))
    backend = make_backend("embedded", ExtractConfig(max_persons=2), models_dir=models_dir, num_threads=1)
    scores, hip_x = [], []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            cues = backend.process(YUV420Frame.from_av(frame))
            scores.append(cues.score)
            hip_x.append(cues.keypoints[:, HIPS, 0].mean(axis=1))
    scores, hip_x = np.array(scores), np.array(hip_x)  # [T, 2]
    right = int(hip_x[0].argmax())
    assert (scores[:12] > 0.5).all() and (hip_x[:12, right] > 0.5).all()
    assert (scores[13:20, right] == 0).all()  # gone (frame 12 may still hold the last good pose)
    back = np.flatnonzero(scores[20:, right] > 0.5) + 20
    assert len(back) and back[0] <= 20 + tracking.LOOK_AFTER_LOSS + 1  # found again within a few frames...
    assert (hip_x[back, right] > 0.5).all() and (scores[back[0]:, right] > 0.5).all()  # ...in the same slot
    assert (scores[:, 1 - right] > 0.5).all() and (hip_x[:, 1 - right] < 0.5).all()  # the other never moved
