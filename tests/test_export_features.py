"""`posebridge export-features`: a split's frozen Shift-GCN features written as a SynSE/PURLS feature
folder, read back by `train --features` (tiny random data: mechanics, not accuracy)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posebridge.pipeline.errors import UserError
from posebridge.stages.experiments import experiment
from posebridge.stages.train.data import partition
from posebridge.stages.train.export_features import export_split_features
from posebridge.stages.train.feature_folder import load_feature_folder
from posebridge.stages.experiments.run import for_features
from test_encoders import SHIFT, count_pretraining  # noqa: F401  (fixture)
from test_loop import C, K, P2, SEEN, VC, tiny_bank, tiny_config, tiny_dataset, tiny_split


def test_export_writes_the_runs_partition_from_the_cached_encoder(tmp_path, count_pretraining):  # noqa: F811
    cache, out = tmp_path / "cache", tmp_path / "folder"
    cfg, data, split = tiny_config(**SHIFT, cues="none", gzsl_calibration="none"), tiny_dataset(), tiny_split()
    experiment.train(cfg, data, split, tiny_bank(), tmp_path / "run", encoder_cache=cache)
    assert count_pretraining == [len(SEEN)]
    counts = export_split_features(cfg, data, split, out, encoder_cache=cache)
    assert count_pretraining == [len(SEEN)]  # the training run's encoder, from the cache
    parts = partition(data, split, cfg.val_fraction, cfg.seed)
    assert counts == {"train": len(parts["train"]), "val": len(parts["val"]), "test": len(parts["test_gzsl"])}
    for side, part in (("train", "train"), ("val", "val"), ("test", "test_gzsl")):
        features, labels = np.load(out / f"{side}_feature.npy"), np.load(out / f"{side}_labels.npy")
        assert features.dtype == np.float32 and features.shape == (len(parts[part]), 16, 3, 33)  # [N, 4w, T', V]
        assert np.array_equal(labels, data.labels.numpy()[parts[part]])
    (encoder,) = (cache / "encoders").iterdir()
    cached = np.load(encoder / "features.npy").astype(np.float32)
    assert np.array_equal(np.load(out / "test_feature.npy"), cached[parts["test_gzsl"]])
    info = json.loads((out / "info.json").read_text())
    assert info["split"] == split.name and info["rows"] == counts and info["sides"]["test"] == "test_gzsl"
    # cue tokens: per clip, cues pooled to 16 windows, averaged over the persons present (by hand)
    cues = np.load(out / "test_cue.npy")
    assert cues.dtype == np.float16 and cues.shape == (len(parts["test_gzsl"]), 16, VC * (C + P2))
    for row, clip in enumerate(parts["test_gzsl"][:4]):
        persons = [m for m in range(2) if data.confidence[clip, m].gt(0).any()]
        raw = torch.cat([data.features[clip], data.heatmaps[clip]], dim=-1)[persons].float()  # [m, T, VC, C + P2]
        t = raw.shape[1]  # window i: frames floor(i t / 16) .. ceil((i + 1) t / 16), as adaptive pooling
        windows = torch.stack([raw[:, (i * t) // 16:-((-(i + 1) * t) // 16)].mean(dim=1) for i in range(16)], dim=1)
        expected = windows.mean(0).flatten(1)
        assert np.allclose(cues[row], expected.numpy(), atol=2e-3, rtol=2e-3), clip
    assert info["cue_shape"] == [16, VC * (C + P2)]

    # read back: the same partition (the folder's own val rows), and it trains
    folder = load_feature_folder(out, num_classes=K)
    back = partition(folder, split, cfg.val_fraction, cfg.seed)
    for name in ("train", "val", "test_zsl", "test_gzsl"):
        assert len(back[name]) == len(parts[name]), name
        assert np.array_equal(folder.labels.numpy()[back[name]], data.labels.numpy()[parts[name]]), name
    test_rows = [i for i, m in enumerate(folder.meta) if m["side"] == "test"]
    assert torch.equal(folder.cue_tokens[test_rows], torch.from_numpy(cues))
    metrics = experiment.train(for_features(cfg, folder), folder, split, tiny_bank(), tmp_path / "back",
                               encoder_cache=cache)
    assert metrics["samples"]["test_zsl"] == len(parts["test_zsl"]) and 0.0 <= metrics["zsl"]["top1"] <= 1.0


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
    from posebridge.stages.train.synthetic import write_synthetic_store

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
