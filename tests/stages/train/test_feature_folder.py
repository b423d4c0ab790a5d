"""`posebridge train --split NAME --features DIR`: the SynSE/PURLS feature-folder route (small
SYNTHETIC feature files in the real layout: [N, 256, 3, 25] float32, 0-based NTU-60 class ids)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posebridge.pipeline.cli import main
from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import get_split
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import partition
from posebridge.stages.train.feature_folder import load_feature_folder
from posebridge.stages.train import loop
from posebridge.pipeline.run import train_splits

SPLIT = "ntu60_55_5"
C, TP, V = 256, 3, 25


def write_folder(folder, seed=0, zero_rows=(), per_class=2):
    """Features carry a class-dependent direction, so there is something to learn (mechanics only)."""
    split = get_split(SPLIT)
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((60, C)).astype(np.float32)
    sides = {"train": np.repeat(split.seen, per_class), "val": np.array(split.seen),
             "test": np.repeat(np.arange(60), per_class)}
    folder.mkdir(parents=True, exist_ok=True)
    for side, labels in sides.items():
        x = directions[labels][:, :, None, None] + 0.5 * rng.standard_normal((len(labels), C, TP, V), np.float32)
        if side == "test":
            x[list(zero_rows)] = 0.0  # missing skeletons: dropped on loading
        np.save(folder / f"{side}_feature.npy", x.astype(np.float32))
        np.save(folder / f"{side}_labels.npy", labels.astype(np.int64))
    return sides


def test_loading_drops_all_zero_rows_normalises_cells_and_keeps_the_files_sides(tmp_path):
    sides = write_folder(tmp_path / "f", zero_rows=(0, 5))
    ds = load_feature_folder(tmp_path / "f", num_classes=60)
    n = sum(len(v) for v in sides.values())
    maps = ds.joint_features
    assert len(ds) == n - 2 and maps.shape == (n - 2, 1, TP, V, C) and maps.dtype == torch.float16
    assert ds.keypoints.shape == (n - 2, 1, TP, V, 0)  # no coordinates: the maps are the skeleton
    assert ds.subset([2, 0]).joint_features.tolist() == maps[[2, 0]].tolist()
    norms = maps.float().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=2e-3)  # float16 of unit vectors
    test_rows = [i for i, m in enumerate(ds.meta) if m["side"] == "test"]
    assert [ds.meta[i]["row"] for i in test_rows[:3]] == [1, 2, 3]
    assert ds.labels[test_rows].tolist() == np.delete(sides["test"], [0, 5]).tolist()
    parts = partition(ds, get_split(SPLIT), 0.1, 0)
    assert [ds.meta[i]["side"] for i in parts["val"]] == ["val"] * len(sides["val"])
    assert {ds.meta[i]["side"] for i in parts["train"]} == {"train"}
    assert {ds.meta[i]["side"] for i in parts["test_gzsl"]} == {"test"}


def test_the_folders_maps_reach_the_model_as_its_skeleton_features(tmp_path):
    """A folder's [N, C, T', V] maps enter the heads through the encoders' precomputed-features entry
    point unchanged (no per-frame augmentation of pooled features), and the model reads no keypoints."""
    write_folder(tmp_path / "f", per_class=1)
    ds = load_feature_folder(tmp_path / "f", num_classes=60)
    data = loop.to_device(ds, "none", torch.device("cpu"))
    rows = torch.tensor([0, 3, 7])
    for gen in (None, torch.Generator().manual_seed(0)):
        kp, conf, feat, hm, joint = loop.take_batch(data, rows, TrainConfig(split=SPLIT, cues="none"), gen)
        assert kp is None and conf is None and feat is None and hm is None
        assert torch.equal(joint, ds.joint_features[rows, 0].permute(0, 3, 1, 2).float())  # [B, C, T', V]
    args = loop.model_args(TrainConfig(split=SPLIT, cues="none", skeleton_encoder="gcn"), ds, tiny_bank_for(60))
    assert args.skeleton_input == "features" and args.skeleton_channels == C and args.num_joints == V


def tiny_bank_for(num_classes: int):
    from posebridge.stages.train.text_bank import TextBank

    d = 8
    return TextBank(class_names=[str(i) for i in range(num_classes)], name=torch.zeros(num_classes, d),
                    description=torch.zeros(num_classes, d), parts=torch.zeros(num_classes, 4, d),
                    parts_mask=torch.ones(num_classes, 4, dtype=torch.bool), temporal=torch.zeros(num_classes, 3, d),
                    temporal_mask=torch.ones(num_classes, 3, dtype=torch.bool), fingerprint="test")


def test_training_on_a_feature_folder_gives_the_usual_run_folder(tmp_path):
    write_folder(tmp_path / "f", zero_rows=(3,))
    base = TrainConfig(split=SPLIT, cues="none", epochs=2, batch_size=32, device="cpu",
                       gzsl_calibration="none")
    (result,) = train_splits([SPLIT], base=base, features=tmp_path / "f", cache_dir=tmp_path / "cache",
                             runs_dir=tmp_path / "runs")
    run = result.run_dirs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["samples"]["test_zsl"] == 10 and metrics["samples"]["test_gzsl"] == 119  # one zero row dropped
    assert metrics["samples"]["val"] == 55 and metrics["samples"]["train"] == 110
    assert 0.0 <= metrics["zsl"]["top1"] <= 1.0 and "| ntu60_55_5 | none |" in result.table
    config = json.loads((run / "config.json").read_text())
    assert config["num_frames"] == TP and config["crop_min"] == 1.0 and config["scale_jitter"] == 0.0
    from posebridge.pipeline.run import evaluate_run

    again = evaluate_run(run, cache_dir=tmp_path / "cache", features=tmp_path / "f")
    assert again["zsl"] == metrics["zsl"] and again["data_matches_training"]


@pytest.mark.parametrize("breakage, message", [
    (lambda f: (f / "val_feature.npy").unlink(), r"val_feature.npy is missing; .*\[N, C, T', V\]"),
    (lambda f: np.save(f / "test_feature.npy", np.zeros((4, 256, 3), np.float32)),
     r"test_feature.npy has shape \[4, 256, 3\] \(float32\); expected \[N, C, T', V\] float"),
    (lambda f: np.save(f / "test_feature.npy", np.ones((4, 128, 3, 25), np.float32)),
     r"test_feature.npy has shape \[4, 128, 3, 25\]; the other files of the folder have \[N, 256, 3, 25\]"),
    (lambda f: np.save(f / "train_labels.npy", np.zeros(3, np.int64)),
     r"train_labels.npy has shape \(3,\) \(int64\); expected \[110\] integer class ids"),
    (lambda f: np.save(f / "val_labels.npy", np.full(55, 60)),
     r"val_labels.npy has class id 60, but the split has 60 classes"),
])
def test_bad_folders_are_one_line_errors_naming_the_file_and_the_shape(tmp_path, breakage, message):
    write_folder(tmp_path / "f")
    breakage(tmp_path / "f")
    with pytest.raises(UserError, match=message):
        load_feature_folder(tmp_path / "f", num_classes=60)


def test_cli_needs_cues_none_and_says_so(tmp_path, capsys):
    write_folder(tmp_path / "f")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--split", SPLIT, "--features", str(tmp_path / "f"), "--cache-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "add --cues none" in err


S, DC = 16, 512  # cue tokens per video, as the PoseBridge authors publish them


def write_cues(folder, sides, seed=1, drop=None):
    rng = np.random.default_rng(seed)
    for side, labels in sides.items():
        if side != drop:
            np.save(folder / f"{side}_cue.npy", rng.standard_normal((len(labels), S, DC)).astype(np.float32))


def test_cue_tokens_in_the_folder_follow_the_kept_rows_and_reach_the_bridge(tmp_path):
    sides = write_folder(tmp_path / "f", zero_rows=(0, 5), per_class=1)
    write_cues(tmp_path / "f", sides)
    ds = load_feature_folder(tmp_path / "f", num_classes=60)
    test_cues = np.load(tmp_path / "f" / "test_cue.npy")
    test_rows = [i for i, m in enumerate(ds.meta) if m["side"] == "test"]
    assert ds.cue_tokens.shape == (len(ds), S, DC) and ds.cue_tokens.dtype == torch.float16
    assert torch.equal(ds.cue_tokens[test_rows], torch.from_numpy(np.delete(test_cues, [0, 5], axis=0)).half())

    cfg = TrainConfig(split=SPLIT, cues="all")
    data = loop.to_device(ds, "all", torch.device("cpu"))
    rows = torch.tensor([0, 3, 7])
    _, _, tokens, _, joint = loop.take_batch(data, rows, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(tokens, ds.cue_tokens[rows].float()) and joint.shape == (3, C, TP, V)
    args = loop.model_args(cfg, ds, tiny_bank_for(60))
    assert (args.cue_input, args.cue_token_dim, args.cue_steps) == ("tokens", DC, S)
    from posebridge.stages.train.heads import PoseBridge

    model = PoseBridge(args).eval()
    with torch.no_grad():
        model.bridge.gate.bias.fill_(1.0)  # open the gate so the cues can reach the output
        base = model(None, None, tokens, None, joint).global_
        other = model(None, None, torch.randn_like(tokens), None, joint).global_
    assert (base - other).norm(dim=-1).min() > 1e-3
    # --cues none leaves them out entirely
    assert loop.to_device(ds, "none", torch.device("cpu")).features is None


def test_training_with_the_folders_cue_tokens(tmp_path):
    sides = write_folder(tmp_path / "f")
    write_cues(tmp_path / "f", sides)
    base = TrainConfig(split=SPLIT, cues="all", epochs=1, batch_size=32, device="cpu", gzsl_calibration="none")
    (result,) = train_splits([SPLIT], base=base, features=tmp_path / "f", cache_dir=tmp_path / "cache",
                             runs_dir=tmp_path / "runs")
    assert "| ntu60_55_5 | all |" in result.table
    config = json.loads((result.run_dirs[0] / "config.json").read_text())
    assert config["cue_steps"] == S and config["cues"] == "all"


@pytest.mark.parametrize("breakage, message", [
    (lambda f, sides: write_cues(f, sides, drop="val"), r"val_cue.npy is missing, but the folder has cue tokens"),
    (lambda f, sides: (write_cues(f, sides), np.save(f / "test_cue.npy", np.zeros((4, S), np.float32))),
     r"test_cue.npy has shape \[4, 16\] \(float32\); expected \[120, S, D\] float"),
    (lambda f, sides: (write_cues(f, sides), np.save(f / "val_cue.npy", np.zeros((55, 8, DC), np.float32))),
     r"val_cue.npy has shape \[55, 8, 512\]; the other cue files have \[N, 16, 512\]"),
])
def test_bad_cue_files_are_one_line_errors(tmp_path, breakage, message):
    sides = write_folder(tmp_path / "f")
    breakage(tmp_path / "f", sides)
    with pytest.raises(UserError, match=message):
        load_feature_folder(tmp_path / "f", num_classes=60)


def test_a_folder_without_cue_tokens_refuses_cues_before_any_run_folder(tmp_path):
    write_folder(tmp_path / "f")
    for cues, expected in (("all", "add --cues none"), ("heatmap", "use --cues all or none")):
        base = TrainConfig(split=SPLIT, cues=cues, epochs=1, device="cpu")
        with pytest.raises(UserError, match=expected):
            train_splits([SPLIT], base=base, features=tmp_path / "f", cache_dir=tmp_path / "c",
                         runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("with_cues", [False, True])
def test_the_folders_fingerprint_is_the_sha256_of_its_files_hashed_while_reading(tmp_path, with_cues):
    """Every file counts: a changed feature file is other data (it once hashed the labels only)."""
    from posebridge.cache.fingerprint import file_sha256, fingerprint

    folder = tmp_path / "f"
    sides = write_folder(folder, per_class=1)
    if with_cues:
        write_cues(folder, sides)
    kinds = ("feature", "labels", "cue") if with_cues else ("feature", "labels")

    def expected():
        return fingerprint({f"{side}_{kind}": file_sha256(folder / f"{side}_{kind}.npy")
                            for side in sides for kind in kinds})

    plain_sha = expected()
    plain = load_feature_folder(folder, num_classes=60)
    assert plain.source_fingerprint == plain_sha
    # a Fortran-order file takes the other read path: the same rows, its own bytes' fingerprint
    np.save(folder / "test_feature.npy", np.asfortranarray(np.load(folder / "test_feature.npy")))
    fortran = load_feature_folder(folder, num_classes=60)
    assert torch.equal(plain.joint_features, fortran.joint_features)
    assert fortran.source_fingerprint == expected() != plain_sha
