"""--skeleton-encoder: the frozen Shift-GCN is pretrained once per (data, split rows, settings) and its
cached features serve every later experiment (tiny random data: mechanics, not accuracy)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.eval.evaluate import evaluate
from posebridge.pipeline import experiment
from posebridge.stages.train.checkpoint import CHECKPOINT
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.encoders import AUTO_SHIFTGCN_MIN_CLIPS, frozen, resolve_encoder
from tests.stages.train.test_loop import SEEN, UNSEEN, tiny_bank, tiny_config, tiny_dataset, tiny_split

SHIFT = dict(skeleton_encoder="shiftgcn", shiftgcn_width=4, shiftgcn_epochs=1, epochs=1)


@pytest.fixture
def count_pretraining(monkeypatch):
    calls = []
    real = frozen.pretrain

    def counted(keypoints, confidence, targets, num_classes, settings, device):
        calls.append(num_classes)
        return real(keypoints, confidence, targets, num_classes, settings, device)

    monkeypatch.setattr(frozen, "pretrain", counted)
    return calls


def test_second_train_on_the_same_split_does_no_pretraining(tmp_path, count_pretraining):
    cache = tmp_path / "cache"
    first = experiment.train(tiny_config(**SHIFT), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path / "a",
                       encoder_cache=cache)
    # the main encoder (all seen classes) and the calibration's (seen minus pseudo-unseen)
    assert count_pretraining == [len(SEEN), len(SEEN) - len(UNSEEN)]
    folders = sorted((cache / "encoders").iterdir())
    assert len(folders) == 2 and all((f / "features.npy").exists() for f in folders)
    info = json.loads((folders[0] / "info.json").read_text())
    assert info["shape"][1:] == [16, 3, 33]  # [N, 4 x width, steps, V]
    # another experiment on the same split (other cues, other head settings): cache only
    again = experiment.train(tiny_config(**SHIFT, cues="none", lr=5e-3), tiny_dataset(), tiny_split(), tiny_bank(),
                       tmp_path / "b", encoder_cache=cache)
    assert count_pretraining == [len(SEEN), len(SEEN) - len(UNSEEN)]
    assert 0.0 <= again["zsl"]["top1"] <= 1.0 and 0.0 <= first["zsl"]["top1"] <= 1.0
    # evaluating the run reads the same cached features
    metrics = evaluate(tmp_path / "a" / CHECKPOINT, tiny_dataset(), tiny_split(), tiny_bank(),
                            encoder_cache=cache)
    assert metrics["zsl"] == first["zsl"] and len(count_pretraining) == 2
    # a changed encoder setting is another encoder
    experiment.train(tiny_config(**{**SHIFT, "shiftgcn_epochs": 2}), tiny_dataset(), tiny_split(), tiny_bank(),
               tmp_path / "c", encoder_cache=cache)
    assert len(count_pretraining) == 4


def test_encoder_key_covers_data_rows_classes_and_settings():
    base = dict(data_fingerprint="f" * 64, num_frames=12, train_idx=np.arange(10), classes=np.array([0, 1]),
                settings=frozen.ShiftGCNSettings())
    key = frozen.encoder_fingerprint(**base)
    for change in ({"data_fingerprint": "e" * 64}, {"train_idx": np.arange(9)}, {"classes": np.array([0, 2])},
                   {"settings": frozen.ShiftGCNSettings(epochs=5)}, {"num_frames": 64}):
        assert frozen.encoder_fingerprint(**{**base, **change}) != key, change


def test_frozen_features_are_averaged_over_present_persons_only():
    torch.manual_seed(0)
    model = frozen.ShiftGCN(33, 3, width=4).eval()
    kp, conf = torch.randn(2, 12, 33, 3), torch.rand(2, 12, 33) + 0.1
    alone = frozen.extract(model, kp, conf, 3, torch.device("cpu"))
    padded = frozen.extract(model, torch.stack([kp, torch.zeros_like(kp)], 1),
                            torch.stack([conf, torch.zeros_like(conf)], 1), 3, torch.device("cpu"))
    assert alone.shape == (2, 16, 3, 33) and torch.equal(alone, padded)


def test_auto_picks_gcn_for_small_sets_and_shiftgcn_otherwise():
    assert resolve_encoder("auto") == "shiftgcn"  # size unknown: counted as large
    # small data sets (the real sets measured: under 1000 clips; the synthetic demo's 1080) get the
    # small GCN, large ones Shift-GCN; the data set's name plays no part
    assert resolve_encoder("auto", clips=1080) == "gcn"
    assert resolve_encoder("auto", clips=AUTO_SHIFTGCN_MIN_CLIPS - 1) == "gcn"
    assert resolve_encoder("auto", clips=AUTO_SHIFTGCN_MIN_CLIPS) == "shiftgcn"
    assert resolve_encoder("shiftgcn", clips=609) == "shiftgcn"  # explicit wins
    assert resolve_encoder("gcn") == "gcn"
    with pytest.raises(UserError, match="--skeleton-encoder"):
        TrainConfig(split="x", skeleton_encoder="stgcn").validate()


def test_shiftgcn_needs_twelve_frames(tmp_path):
    ds = tiny_dataset()
    short = dataclasses.replace(ds, keypoints=ds.keypoints[:, :, :8], confidence=ds.confidence[:, :, :8],
                                features=ds.features[:, :, :8], heatmaps=ds.heatmaps[:, :, :8])
    with pytest.raises(UserError, match="num_frames >= 12"):
        experiment.train(tiny_config(**SHIFT, num_frames=8), short, tiny_split(), tiny_bank(), tmp_path)


def test_halve_time_equals_ceil_mode_average_pooling():
    import torch.nn.functional as F

    from posebridge.stages.train.encoders.small_gcn import halve_time

    for frames in (16, 15, 1):
        x = torch.randn(3, 4, frames, 5)
        assert torch.equal(halve_time(x), F.avg_pool2d(x, (2, 1), ceil_mode=True))
