"""`posebridge export-features`: a split's frozen Shift-GCN features written as a SynSE/PURLS feature
folder, read back by `train --features` (tiny random data: mechanics, not accuracy)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.pipeline import experiment
from posebridge.stages.train.data import partition
from posebridge.stages.train.export_features import export_split_features
from posebridge.stages.train.feature_folder import load_feature_folder
from posebridge.pipeline.run import for_features
from tests.stages.train.test_encoders import SHIFT, count_pretraining  # noqa: F401  (fixture)
from tests.stages.train.test_loop import C, K, P2, SEEN, VC, tiny_bank, tiny_config, tiny_dataset, tiny_split


def test_export_writes_the_reference_layout_from_the_cached_encoder(tmp_path, count_pretraining):  # noqa: F811
    """train = seen classes of the training side, val = seen classes of the test side, test = unseen
    classes of the test side (DynaPURLS data/ntu_60.py), gtest / g_label = the whole test side (SynSE)."""
    cache, out = tmp_path / "cache", tmp_path / "folder"
    cfg, data, split = tiny_config(**SHIFT, cues="none", gzsl_calibration="none"), tiny_dataset(), tiny_split()
    experiment.train(cfg, data, split, tiny_bank(), tmp_path / "run", encoder_cache=cache)
    assert count_pretraining == [len(SEEN)]
    counts = export_split_features(cfg, data, split, out, encoder_cache=cache)
    assert count_pretraining == [len(SEEN)]  # the training run's encoder, from the cache
    parts = partition(data, split, cfg.val_fraction, cfg.seed)
    labels = data.labels.numpy()
    train_side = np.union1d(parts["train"], parts["val"])
    test_seen = parts["test_gzsl"][np.isin(labels[parts["test_gzsl"]], split.seen)]
    expected = {"train": train_side, "val": test_seen, "test": parts["test_zsl"], "gtest": parts["test_gzsl"]}
    assert counts == {side: len(rows) for side, rows in expected.items()}
    assert len(test_seen) and not np.intersect1d(test_seen, train_side).size  # val is test data, not held-out train
    files = {"train": ("train_feature.npy", "train_labels.npy"), "val": ("val_feature.npy", "val_labels.npy"),
             "test": ("test_feature.npy", "test_labels.npy"), "gtest": ("gtest.npy", "g_label.npy")}
    (encoder,) = (cache / "encoders").iterdir()
    cached = np.load(encoder / "features.npy").astype(np.float32)
    for side, (feature_file, label_file) in files.items():
        features, side_labels = np.load(out / feature_file), np.load(out / label_file)
        assert features.dtype == np.float32 and features.shape == (len(expected[side]), 16, 3, 33)  # [N, 4w, T', V]
        assert np.array_equal(side_labels, labels[expected[side]])
        assert np.array_equal(features, cached[expected[side]])
    assert set(np.load(out / "train_labels.npy")) <= set(split.seen)
    assert set(np.load(out / "val_labels.npy")) <= set(split.seen)
    assert set(np.load(out / "test_labels.npy")) <= set(split.unseen)
    info = json.loads((out / "info.json").read_text())
    assert info["split"] == split.name and info["rows"] == counts and info["layout"] == "reference"
    # cue tokens: per clip, cues pooled to 16 windows, averaged over the persons present (by hand)
    cues = np.load(out / "test_cue.npy")
    assert cues.dtype == np.float16 and cues.shape == (len(parts["test_zsl"]), 16, VC * (C + P2))
    for row, clip in enumerate(parts["test_zsl"][:4]):
        persons = [m for m in range(2) if data.confidence[clip, m].gt(0).any()]
        raw = torch.cat([data.features[clip], data.heatmaps[clip]], dim=-1)[persons].float()  # [m, T, VC, C + P2]
        t = raw.shape[1]  # window i: frames floor(i t / 16) .. ceil((i + 1) t / 16), as adaptive pooling
        windows = torch.stack([raw[:, (i * t) // 16:-((-(i + 1) * t) // 16)].mean(dim=1) for i in range(16)], dim=1)
        expected_cues = windows.mean(0).flatten(1)
        assert np.allclose(cues[row], expected_cues.numpy(), atol=2e-3, rtol=2e-3), clip
    assert info["cue_shape"] == [16, VC * (C + P2)]

    # read back: the reference layout is recognised (val = GZSL's seen half), and it trains
    folder = load_feature_folder(out, num_classes=K)
    back = partition(folder, split, cfg.val_fraction, cfg.seed)
    back_labels = folder.labels.numpy()
    assert np.array_equal(np.sort(back_labels[back["train"]]), np.sort(labels[train_side]))
    assert np.array_equal(np.sort(back_labels[back["val"]]), np.sort(labels[test_seen]))
    assert np.array_equal(np.sort(back_labels[back["test_zsl"]]), np.sort(labels[parts["test_zsl"]]))
    assert np.array_equal(np.sort(back_labels[back["test_gzsl"]]), np.sort(labels[parts["test_gzsl"]]))
    test_rows = [i for i, m in enumerate(folder.meta) if m["side"] == "test"]
    assert torch.equal(folder.cue_tokens[test_rows], torch.from_numpy(cues))
    metrics = experiment.train(for_features(cfg, folder), folder, split, tiny_bank(), tmp_path / "back",
                               encoder_cache=cache)
    assert metrics["samples"]["test_zsl"] == len(parts["test_zsl"]) and 0.0 <= metrics["zsl"]["top1"] <= 1.0
    assert metrics["gzsl"]["samples"] == len(parts["test_gzsl"]) and 0.0 <= metrics["gzsl"]["h"] <= 1.0


def test_a_folder_without_seen_test_rows_reports_gzsl_not_available(tmp_path):
    """A reference-layout folder whose val file is empty: the test side has unseen classes only, so
    GZSL is reported as not available, with the reason, never as NaN."""
    import math

    from posebridge.stages.eval.report import summarise_runs

    cfg, data, split = tiny_config(**SHIFT, cues="none", gzsl_calibration="none"), tiny_dataset(), tiny_split()
    out = tmp_path / "folder"
    export_split_features(cfg, data, split, out, encoder_cache=tmp_path / "cache")
    for name in ("val_feature.npy", "val_labels.npy"):  # keep the shape, drop the rows
        np.save(out / name, np.load(out / name)[:0])
    (out / "val_cue.npy").unlink(missing_ok=True)
    (out / "test_cue.npy").unlink(missing_ok=True)
    (out / "train_cue.npy").unlink(missing_ok=True)
    folder = load_feature_folder(out, num_classes=K)
    metrics = experiment.train(for_features(cfg, folder), folder, split, tiny_bank(), tmp_path / "run",
                               encoder_cache=tmp_path / "cache")
    assert metrics["gzsl"]["available"] is False and "no seen-class rows" in metrics["gzsl"]["reason"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in metrics["gzsl"].values())
    table = summarise_runs([tmp_path / "run"])
    assert "| n/a | n/a | n/a |" in table and "GZSL not available" in table and "nan" not in table.lower()
    assert "GZSL not available" in (tmp_path / "run" / "results.md").read_text()


def test_export_refuses_a_folder_that_holds_features_and_the_small_gcn(tmp_path):
    cfg, data, split = tiny_config(**SHIFT), tiny_dataset(), tiny_split()
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "train_feature.npy", np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(UserError, match=r"holds a feature folder already; give an empty or new --out"):
        export_split_features(cfg, data, split, tmp_path / "f", encoder_cache=tmp_path / "c")
    with pytest.raises(UserError, match=r"only the frozen Shift-GCN's features can be exported"):
        export_split_features(tiny_config(skeleton_encoder="gcn"), data, split, tmp_path / "g",
                              encoder_cache=tmp_path / "c")
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "f" / "train_feature.npy")), torch.zeros(1, 1, 1, 1))


def test_cli_export_then_train_on_the_folder(tmp_path, capsys):
    """The two commands a user runs: export-features from a cue cache, train --features --cues all on it (the
    demo's SYNTHETIC store at 4 clips per class; Shift-GCN width 4, 1 epoch: mechanics only)."""
    from posebridge.pipeline.cli import main
    from posebridge.stages.extract.synthetic import write_synthetic_store

    def run(*args) -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        return exit_info.value.code

    cache = tmp_path / "cache"
    store = write_synthetic_store(cache, clips_per_class=4)
    folder = tmp_path / "synthetic features"
    assert run("export-features", "--split", "synthetic_zsl", "--out", str(folder), "--store", str(store),
               "--cache-dir", str(cache), "--shiftgcn-width", "4", "--shiftgcn-epochs", "1", "--device", "cpu") == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {folder}: train ") and line.endswith(" rows")
    assert np.load(folder / "train_feature.npy").shape[1:] == (16, 3, 33)
    assert np.load(folder / "train_cue.npy").shape[1] == 16  # the store has cues: tokens go with the features
    assert run("train", "--split", "synthetic_zsl", "--features", str(folder), "--cues", "all", "--epochs", "1",
               "--gzsl-calibration", "none", "--cache-dir", str(cache), "--runs-dir", str(tmp_path / "runs"),
               "--device", "cpu") == 0
    assert "| synthetic_zsl | all |" in capsys.readouterr().out
    # a second export into the same folder: refused, the folder kept
    assert run("export-features", "--split", "synthetic_zsl", "--out", str(folder), "--store", str(store),
               "--cache-dir", str(cache), "--shiftgcn-width", "4", "--shiftgcn-epochs", "1") == 1
    assert "give an empty or new --out" in capsys.readouterr().err
    assert np.load(folder / "train_feature.npy").shape[1:] == (16, 3, 33)
