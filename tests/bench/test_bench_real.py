"""The real-data bench's converters and baseline, on small files written here in the sets' formats
(JHMDB's Python-2 pickles, MSR Action3D's text files); the real data is never read."""
from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.pyskl import read_pyskl
from posebridge.cache.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import real_baseline  # noqa: E402
import real_jhmdb  # noqa: E402
import real_msr  # noqa: E402


def write_jhmdb(root: Path, per_class: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    (root / "jhmdb").mkdir(parents=True)
    for side in ("train", "test"):
        labels = [name for name, n in per_class.items() for _ in range(n)]
        poses = [rng.normal(size=(int(rng.integers(15, 41)), 15, 2)).round(3) for _ in labels]
        with open(root / "jhmdb" / f"GT_{side}_1.pkl", "wb") as f:
            pickle.dump({"pose": poses, "label": labels}, f, protocol=2)  # protocol 2, as Python 2 wrote


def write_msr(root: Path, subjects=range(1, 11), actions=range(1, 21)) -> list[str]:
    rng = np.random.default_rng(1)
    skel = root / "msr_action3d" / "skeletons"
    skel.mkdir(parents=True)
    names = []
    for a in actions:
        for s in subjects:
            name = f"a{a:02d}_s{s:02d}_e01"
            frames = int(rng.integers(13, 30))
            values = np.concatenate([rng.normal(size=(frames * 20, 3)), np.ones((frames * 20, 1))], axis=1)
            np.savetxt(skel / f"{name}_skeleton3D.txt", values, fmt="%.6f")
            names.append(name)
    (skel / "a01_s01_e09_skeleton3D.txt").write_text("broken\n")  # not in the list: never read
    (root / "msr_action3d" / "files_used_in_cvpr12_paper.txt").write_text("\n".join(names))  # no final newline
    return names


def test_jhmdb_converts_to_pyskl_layout_and_split(tmp_path):
    write_jhmdb(tmp_path / "data", {k: 2 for k in real_jhmdb.CLASSES})
    real = real_jhmdb.convert(tmp_path / "data", tmp_path / "work")
    data = read_pyskl(real.pyskl)
    assert {k: len(v) for k, v in data["split"].items()} == {"split1_train": 28, "split1_test": 28}
    ann = data["annotations"][0]
    assert ann["keypoint"].shape == (1, ann["total_frames"], 15, 2) and ann["keypoint"].dtype == np.float32
    assert ann["keypoint_score"].shape == (1, ann["total_frames"], 15)
    assert ann["label"] == 0 and ann["frame_dir"] == "train1_000_catch"
    layout = json.loads(real.layout.read_text())
    split = json.loads(real.split_file.read_text())
    assert layout["dims"] == 2 and len(layout["joints"]) == 15 and len(layout["bones"]) == 14
    named = set(layout["joints"])
    assert all(a in named and b in named for a, b in layout["bones"])
    assert all(set(j) <= named for j in layout["parts"].values()) and set(layout["parts"]) == {"head", "hands", "torso", "legs"}
    assert split["skeleton"] == real.layout.name and (split["train"], split["test"]) == ("split1_train", "split1_test")
    assert [c["name"] for c in split["classes"]][6] == "pull up"
    assert len(split["partitions"]) == 10 and all(len(p) == 4 for p in split["partitions"])
    assert len({tuple(p) for p in split["partitions"]}) > 1
    # the same seed gives the same partitions
    assert real_jhmdb.convert(tmp_path / "data", tmp_path / "work2").partitions == real.partitions


def test_jhmdb_pickle_that_runs_code_is_refused(tmp_path):
    (tmp_path / "jhmdb").mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    for side in ("train", "test"):
        with open(tmp_path / "jhmdb" / f"GT_{side}_1.pkl", "wb") as f:
            pickle.dump({"pose": [Evil()], "label": ["clap"]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        real_jhmdb.convert(tmp_path, tmp_path / "work")
    assert not (tmp_path / "pwned").exists()


def test_msr_converts_listed_files_cross_subject(tmp_path):
    names = write_msr(tmp_path / "data", subjects=(1, 2, 3), actions=range(1, 21))
    real = real_msr.convert(tmp_path / "data", tmp_path / "work")
    data = read_pyskl(real.pyskl)
    assert len(data["annotations"]) == len(names) == 60
    assert len(data["split"]["xsub_train"]) == 40 and len(data["split"]["xsub_test"]) == 20
    assert all("_s02_" in n for n in data["split"]["xsub_test"])
    ann = next(a for a in data["annotations"] if a["frame_dir"] == "a07_s03_e01")
    assert ann["label"] == 6 and ann["keypoint"].shape == (1, ann["total_frames"], 20, 3)
    raw = np.loadtxt(tmp_path / "data" / "msr_action3d" / "skeletons" / "a07_s03_e01_skeleton3D.txt")
    np.testing.assert_allclose(ann["keypoint"][0].reshape(-1, 3), raw[:, :3], atol=1e-6)
    layout = json.loads(real.layout.read_text())
    assert layout["joints"][6] == "hip_centre" and layout["joints"][19] == "head" and len(layout["bones"]) == 19
    split = json.loads(real.split_file.read_text())
    assert split["classes"][0]["name"] == "high arm wave" and len(split["classes"]) == 20
    assert all(len(p) == 5 for p in split["partitions"])


def test_msr_bad_file_is_one_line(tmp_path):
    write_msr(tmp_path, subjects=(1,), actions=(1,))
    (tmp_path / "msr_action3d" / "skeletons" / "a01_s01_e01_skeleton3D.txt").write_text("1 2 3 4\n" * 7)
    with pytest.raises(UserError, match="20 lines"):
        real_msr.convert(tmp_path, tmp_path / "work")


def test_baseline_learns_text_aligned_structure_and_chance():
    # features that carry each class's text vector: the unseen classes are found far above chance
    rng = np.random.default_rng(0)
    k, e = 8, 16
    text = rng.normal(size=(k, e)).astype(np.float32)
    mix = rng.normal(size=(e, 30)).astype(np.float32)

    def clips(n):
        y = np.repeat(np.arange(k), n)
        return (text[y] @ mix + 0.1 * rng.normal(size=(len(y), 30))).astype(np.float32), y

    (tx, ty), (vx, vy) = clips(20), clips(10)
    result = real_baseline.evaluate_partition(tx, ty, vx, vy, text, unseen=np.array([1, 5]), seed=0)
    assert result.zsl > 0.9 and result.gzsl_h > 0.5
    assert real_baseline.chance(14, 4).zsl == 0.25
    mean, std = real_baseline.mean_std([0.2, 0.4])
    assert mean == pytest.approx(0.3) and std == pytest.approx(np.std([0.2, 0.4], ddof=1))


def test_clip_features_are_centred_and_scaled():
    layout = real_jhmdb.LAYOUT
    kp = np.random.default_rng(0).normal(size=(1, 20, 15, 2)).astype(np.float32)
    a = real_baseline.clip_features(kp, layout)
    b = real_baseline.clip_features(kp * 3 + 5, layout)  # other units, other origin: the same vector
    assert a.shape == (15 * 2 * 3,)
    np.testing.assert_allclose(a, b, atol=1e-4)
