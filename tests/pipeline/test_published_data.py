"""What a published data set needs, read from its split's fields by the run driver: the stores that
serve it, relabelling (Kinetics-200 in Kinetics-400 data), and Kinetics-200 training with its
default class list, stated in every output."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.store import STORE_NAME
from posebridge.pipeline.run import relabel_to_split
from posebridge.pipeline.stores import find_store
from posebridge.stages.splits.data_files import K400_CLASSES, read_lines
from posebridge.stages.splits.registry import get_split
from posebridge.stages.train.data import CueDataset


def _fake_store(root: Path, dataset: str, name: str) -> Path:
    """A folder list_stores counts as a store (its zarr.json exists); nothing reads it here."""
    folder = root / dataset / name
    (folder / STORE_NAME).mkdir(parents=True)
    (folder / STORE_NAME / "zarr.json").write_text("{}")
    return folder


def test_a_kinetics200_split_finds_a_kinetics400_store_and_names_it_when_there_are_two(tmp_path):
    split = get_split("kinetics200_180_20")
    with pytest.raises(UserError, match=r"no cue cache for dataset 'kinetics200' .* --dataset kinetics400 "
                                        r"--annotations /path/to/kinetics.csv --cache-dir"):
        find_store(split, tmp_path)
    store = _fake_store(tmp_path, "kinetics400", "aaaa")
    assert find_store(split, tmp_path) == store
    assert find_store(get_split("kinetics400_360_40"), tmp_path) == store
    _fake_store(tmp_path, "kinetics", "bbbb")
    with pytest.raises(UserError, match="has 2 caches .*choose one with --store"):
        find_store(split, tmp_path)
    with pytest.raises(UserError, match="no cue cache for dataset 'ntu60'"):
        find_store(get_split("ntu60_55_5"), tmp_path)


def _tiny(labels: list[int], metas: list[dict]) -> CueDataset:
    n = len(labels)
    return CueDataset(keypoints=torch.zeros(n, 1, 4, 17, 3), confidence=torch.ones(n, 1, 4, 17), features=None,
                      heatmaps=None, labels=torch.tensor(labels), clip_ids=[f"c{i}" for i in range(n)], meta=metas,
                      cue_joints=(), source_fingerprint="0" * 64, skeleton="coco17")


def test_kinetics400_labels_become_kinetics200_classes_by_name(tmp_path):
    k400 = read_lines(K400_CLASSES)
    split = get_split("kinetics200_180_20")
    # a store names its labels; a pickle's labels index the Kinetics-400 list
    store = _tiny([0, 250, 199], [{"label_name": k400[0]}, {"label_name": k400[250]}, {"label_name": k400[199]}])
    pickle_like = _tiny([0, 250, 199], [{}, {}, {}])
    for data in (store, pickle_like):
        relabelled = relabel_to_split(data, split)
        assert relabelled.clip_ids == ["c0", "c2"] and relabelled.labels.tolist() == [0, 199]
        assert relabelled.source_fingerprint != data.source_fingerprint
    chosen = list(reversed(k400))[:200]  # a user's list: other classes, other order
    (tmp_path / "k200.txt").write_text("\n".join(chosen))
    users = relabel_to_split(pickle_like, get_split("kinetics200_180_20", kinetics200_classes=tmp_path / "k200.txt"))
    assert users.clip_ids == ["c1"] and users.labels.tolist() == [chosen.index(k400[250])]
    assert users.source_fingerprint != relabel_to_split(pickle_like, split).source_fingerprint
    assert relabel_to_split(store, get_split("kinetics400_360_40")) is store  # its labels are the split's


def _write_kinetics_pickle(path: Path) -> Path:
    """An imported Kinetics-skeleton pickle in miniature: Kinetics-400 labels, train / val lists,
    2D COCO-17 skeletons; classes 0, 1 (seen in 180/20), 29, 34 (unseen) and 300 (not Kinetics-200)."""
    rng = np.random.default_rng(0)
    annotations, sides = [], {"train": [], "val": []}
    for label in (0, 1, 29, 34, 300):
        for i in range(4):
            t = 12
            keypoint = rng.normal(200, 5, size=(1, t, 17, 2)).astype(np.float32)
            keypoint[0, :, 5:7, 1] -= 60
            keypoint[0, :, 9, 1] += 30 * np.sin(np.linspace(0, (label % 7 + 1) * np.pi, t))
            clip = f"k{label:03d}_{i}"
            annotations.append({"frame_dir": clip, "label": label, "total_frames": t, "img_shape": (256, 340),
                                "keypoint": keypoint, "keypoint_score": np.full((1, t, 17), 0.9, np.float32)})
            sides["train" if i < 2 else "val"].append(clip)
    with open(path, "wb") as f:
        pickle.dump({"split": sides, "annotations": annotations}, f)
    return path


def test_train_kinetics200_from_a_pickle_with_no_class_list_flag(tmp_path, capsys):
    """`make train SPLIT=kinetics200_180_20 ARGS="--pyskl k.pkl --cues none"` runs on the default
    class list and says where that list comes from: settings line, config, metrics, tables."""
    from posebridge.pipeline.cli import main

    data = _write_kinetics_pickle(tmp_path / "kinetics.pkl")
    with pytest.raises(SystemExit) as done:
        main(["train", "--split", "kinetics200_180_20", "--pyskl", str(data), "--layout", "coco17", "--cues", "none",
              "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
              "--batch-size", "8", "--skeleton-encoder", "gcn", "--gzsl-calibration", "none", "--device", "cpu"])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert re.search(r"^train kinetics200_180_20 \| classes: the first 200 classes of the Kinetics-skeleton", out, re.M)
    (run,) = (tmp_path / "runs" / "kinetics200_180_20").glob("minilm-cues-none-*/seed-0")
    config, metrics = (json.loads((run / f).read_text()) for f in ("config.json", "metrics.json"))
    assert config["split_class_list"] == metrics["split_class_list"] == get_split("kinetics200_180_20").class_list_source
    assert metrics["samples"]["test_zsl"] == 4 and metrics["samples"]["test_gzsl"] == 8  # class 300 left out
    note = "kinetics200_180_20: class list: the first 200 classes"
    assert note in out and note in (run / "results.md").read_text() and note in (run.parent / "results.md").read_text()
    assert "ASSUMPTION (kinetics200_180_20): Kinetics-200 class list: PURLS does not publish it" in out
