"""The PURLS supplement's small sets (NW-UCLA, UTD-MHAD, UWA3D II) as shipped split files: every
class, text and index agrees with the shipped PURLS files, each cell has its stated sides (and
its all-clips twin), UWA3D II says it has no data, and `train --split nwucla_8_2 --pyskl` runs."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.errors import UserError
from posebridge.stages.splits.data_files import data_path, read_purls_sheet
from posebridge.stages.splits.descriptions import purls_row
from posebridge.stages.splits.registry import SHIPPED_SPLIT_FILES, SPLIT_NAMES, get_split, list_splits
from posebridge.stages.train.text import class_texts

# set prefix -> (dataset, PURLS label_splits folder, gpt3_desc sheet, classes, side names)
SETS = {"nwucla": ("nwucla", "nw-ucla", "NW-UCLA", 10, ("xview_train", "xview_val")),
        "utdmhad": ("utdmhad", "utd-mhad", "UTD-MHAD", 27, ("xsub_train", "xsub_val")),
        "uwa3d": ("uwa3dii", "uwa3dii", "UWA3DII", 30, ("xview_train", "xview_val"))}
CELLS = ["nwucla_8_2", "nwucla_5_5", "utdmhad_22_5", "utdmhad_18_9", "utdmhad_14_13",
         "uwa3d_24_6", "uwa3d_20_10", "uwa3d_15_15"]
ALLCLIPS = [f"{c}_allclips" for c in CELLS if not c.startswith("uwa3d")]
# PURLS's UWA3DII sheet names classes 4 and 27 both "sitting down"; names must be unique.
RENAMED = {("uwa3d", 27): "sitting down (chair)"}


def _parts(name: str):
    prefix, n_seen, n_unseen = re.match(r"([a-z0-9]+?)_(\d+)_(\d+)", name).groups()
    return prefix, int(n_seen), int(n_unseen)


def test_every_cell_and_its_all_clips_twin_is_registered():
    assert set(CELLS + ALLCLIPS) <= set(SHIPPED_SPLIT_FILES) <= set(SPLIT_NAMES)
    shipped = {p.stem for p in data_path("split_files/synthetic_zsl.json").parent.glob("*.json")}
    assert shipped == set(SHIPPED_SPLIT_FILES)  # datasets.json lists every shipped split file, no other


@pytest.mark.parametrize("name", CELLS + ALLCLIPS)
def test_classes_texts_and_unseen_lists_are_purls_own(name):
    prefix, n_seen, n_unseen = _parts(name)
    dataset, folder, sheet, n, _ = SETS[prefix]
    split = get_split(name)
    rows = read_purls_sheet(f"derived/gpt3_desc_{sheet}.csv")
    assert split.dataset == dataset and len(split.class_names) == len(rows) == n == n_seen + n_unseen
    assert list(split.class_names) == [RENAMED.get((prefix, i), row["Action Labels"].strip())
                                       for i, row in enumerate(rows)]
    unseen = np.load(data_path(f"purls/supplements/label_splits/{folder}/ru{n_unseen}.npy"))
    seen = np.load(data_path(f"purls/supplements/label_splits/{folder}/rs{n_seen}.npy"))
    assert split.unseen == tuple(sorted(unseen.tolist())) and split.seen == tuple(sorted(seen.tolist()))
    for text, row in zip(class_texts(split), rows):  # description, 4 body parts, 3 phases: the sheet's
        expected = purls_row(row)
        assert (text.description, text.parts, text.temporal) == (expected.description, expected.parts, expected.temporal)
        assert tuple(text.parts) == ("head", "hands", "torso", "legs") and tuple(text.temporal) == ("start", "middle", "end")
    assert split.published_text_encoder == "CLIP ViT-B/32" and "PURLS does not say" in split.assumption
    assert f"ru{n_unseen}.npy" in split.about


@pytest.mark.parametrize("name", CELLS)
def test_a_cell_reads_the_sets_usual_protocol_and_its_twin_puts_every_clip_on_both_sides(name):
    prefix = _parts(name)[0]
    train, test = SETS[prefix][4]
    split = get_split(name)
    assert (split.train_side.kind, split.train_side.values, split.test_side.values) == ("names", (train,), (test,))
    if prefix == "uwa3d":
        return
    twin = get_split(f"{name}_allclips")
    assert twin.train_side.values == twin.test_side.values == (train, test)
    assert (twin.class_names, twin.seen, twin.unseen, twin.classes) == (split.class_names, split.seen, split.unseen,
                                                                        split.classes)
    assert f"{name}_allclips is the other reading" in split.assumption and f"{name} " in twin.assumption


def test_uwa3d_is_listed_without_reachable_data_and_training_says_so_in_one_line(tmp_path):
    from posebridge.pipeline.run import train_splits
    from posebridge.stages.train.config import TrainConfig

    rows = {row["name"]: row for row in list_splits()}
    assert all(rows[name]["status"] == "no reachable data" for name in CELLS if name.startswith("uwa3d"))
    assert rows["nwucla_8_2"]["status"] == "ready"
    with pytest.raises(UserError) as err:  # before any data is read: the pickle does not even exist
        train_splits(["uwa3d_24_6"], base=TrainConfig(split="uwa3d_24_6", cues="none"), pyskl=tmp_path / "x.pkl",
                     runs_dir=tmp_path / "runs")
    message = str(err.value)
    assert message.startswith("split uwa3d_24_6 has no reachable data: ") and "\n" not in message
    assert "`posebridge splits`" in message and not (tmp_path / "runs").exists()


# --- NW-UCLA end to end, on a small pickle made here --------------------------------------------

KINECT_V1 = ["hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist",
             "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
             "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot"]


def kinect_v1_layout(folder: Path) -> str | None:
    """The --layout a 20-joint Kinect v1 pickle needs: none once the importer's built-in kinect_v1
    is there, else a layout file of that name written here."""
    from posebridge.cache.layouts import REGISTRY

    if "kinect_v1" in REGISTRY:
        return None
    j = KINECT_V1
    bones = [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (6, 7), (2, 8), (8, 9), (9, 10), (10, 11), (0, 12),
             (12, 13), (13, 14), (14, 15), (0, 16), (16, 17), (17, 18), (18, 19)]
    layout = {"name": "kinect_v1", "dims": 3, "joints": j, "bones": [[j[a], j[b]] for a, b in bones],
              "parts": {"head": ["head"], "hands": j[5:8] + j[9:12], "torso": j[0:3] + [j[4], j[8], j[12], j[16]],
                        "legs": j[13:16] + j[17:20]},
              "center": "hip_center", "torso": ["shoulder_center", "hip_center"], "root": "hip_center"}
    path = folder / "kinect_v1.json"
    path.write_text(json.dumps(layout))
    return str(path)


def write_nwucla_like(path: Path, per_view: int = 2) -> Path:
    """10 classes x 3 views x `per_view` one-person Kinect v1 clips, as the NW-UCLA importer writes
    them (views 1 + 2 in xview_train, view 3 in xview_val); each class moves the right hand its own way."""
    rng = np.random.default_rng(0)
    annotations, sides = [], {"xview_train": [], "xview_val": []}
    for label in range(10):
        for view in (1, 2, 3):
            for take in range(per_view):
                t = 16
                keypoint = rng.normal(0, 0.01, size=(1, t, 20, 3)).astype(np.float32)
                keypoint[0, :, :, 1] += np.linspace(1.0, 0.0, 20)  # head (low indices) above the feet
                keypoint[0, :, 11, 1] += 0.3 * np.sin(np.linspace(0, (label + 1) * np.pi, t))
                clip = f"a{label + 1:02d}_s01_e{take:02d}_v{view:02d}"
                annotations.append({"frame_dir": clip, "label": label, "total_frames": t, "keypoint": keypoint})
                sides["xview_train" if view < 3 else "xview_val"].append(clip)
    with open(path, "wb") as f:
        pickle.dump({"split": sides, "annotations": annotations}, f)
    return path


def test_train_nwucla_from_a_pickle_both_readings(tmp_path, capsys):
    """`posebridge train --split nwucla_8_2 --pyskl nwucla.pkl --cues none`: cross-view scores ZSL and
    GZSL; the all-clips twin scores ZSL and says in the table and metrics.json why there is no GZSL."""
    from posebridge.pipeline.cli import main

    data = write_nwucla_like(tmp_path / "nwucla.pkl")
    layout = kinect_v1_layout(tmp_path)
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        main(["train", "--split", "nwucla_8_2", "--split", "nwucla_8_2_allclips", "--pyskl", str(data), "--cues",
              "none", *(["--layout", layout] if layout else []), "--runs-dir", str(runs), "--cache-dir",
              str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8", "--skeleton-encoder", "gcn",
              "--device", "cpu"])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    (cross,) = runs.glob("nwucla_8_2/minilm-cues-none-*/seed-0/metrics.json")
    (every,) = runs.glob("nwucla_8_2_allclips/minilm-cues-none-*/seed-0/metrics.json")
    cross, every = json.loads(cross.read_text()), json.loads(every.read_text())
    assert cross["gzsl"]["samples"] == 20 and cross["zsl"]["samples"] == 4 and "h" in cross["gzsl"]  # view 3
    assert every["zsl"]["samples"] == 12 and every["samples"]["test_gzsl"] == 12  # every unseen clip tests
    assert every["gzsl"]["available"] is False and "share 60 clips" in every["gzsl"]["reason"]
    assert every["samples"]["train"] + every["samples"]["val"] == 48  # every seen clip trains or validates
    assert every["calibration"]["method"] == "none"
    assert re.search(r"^\| nwucla_8_2_allclips \| none \| minilm \| [\d.]+ \| – \| n/a \| n/a \| n/a \| 1 \|$", out, re.M)
    assert "nwucla_8_2_allclips: GZSL not available: the train and test sides" in out
    assert re.search(r"^\| nwucla_8_2 \| none \| minilm \| [\d.]+ \| – \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1 \|$", out, re.M)
    assert "ASSUMPTION (nwucla_8_2): sides: cross-view" in out and "NOTE: text encoder minilm" in out
