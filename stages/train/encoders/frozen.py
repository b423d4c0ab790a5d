"""A Shift-GCN pretrained per split on the seen classes' training side, frozen, its features cached.

As SynSE / PURLS / PoseBridge do (their data cards ship "Shift-GCN on seen classes, one per config"
and its features), the skeleton branch is trained once with cross-entropy on the training samples of
the classes a model may see, then only its features are used. They are cached under
<cache>/encoders/shiftgcn-<fingerprint[:16]>/ where the fingerprint covers the data (the source's
fingerprint), which samples and classes trained the encoder, and the encoder's settings; so every
later experiment on the same split (other cues, losses, heads, seeds sharing the partition) loads
them, and any change to those inputs trains a new one. The folder holds weights.pt, info.json and
features.npy ([N, W, steps, V] float16, every row of the data; written last: its presence means
complete; each file appears whole or not at all).

Pretraining follows the reference's NTU config (kchengiva/Shift-GCN config/nturgbd-cross-subject/
train_joint.yaml): SGD with Nesterov momentum 0.9, lr 0.1, weight decay 1e-4, batch 64, the rate
divided by 10 at 60/80/100 of 140 epochs (scaled to the epochs asked for).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from posebridge.cache.atomic import atomic_path
from posebridge.cache.fingerprint import fingerprint
from posebridge.stages.train.config import TrainConfig, config_field, own_field, view_of
from posebridge.stages.train.encoders.shift_gcn import IN_CHANNELS, ShiftGCN
from posebridge.stages.train.persons import fold, pool_rows, present_persons, with_person_axis

ENCODER_VERSION = 1  # bump when the network or its training changes what the features are
MILESTONES = (60 / 140, 80 / 140, 100 / 140)
EXTRACT_BATCH = 128


@dataclass(frozen=True)
class ShiftGCNSettings:
    """The encoder's share of TrainConfig (its asdict names a cached encoder: _settings_key)."""

    width: int = config_field("shiftgcn_width")  # first units' channels (then 2x, 4x): 64 -> 256-d features
    epochs: int = config_field("shiftgcn_epochs")
    lr: float = config_field("shiftgcn_lr")
    weight_decay: float = own_field(1e-4, "the reference's pretraining decay; TrainConfig's is the heads'")
    batch_size: int = own_field(64, "the reference's pretraining batch; TrainConfig's is the heads'")
    steps: int = config_field("shiftgcn_steps")  # time steps the cached features are pooled to
    # "single": weight_decay on every parameter; "reference": kchengiva/Shift-GCN main.py's
    # per-parameter values (reference_weight_decay)
    weight_decay_recipe: str = config_field("shiftgcn_wd")

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "ShiftGCNSettings":
        return view_of(cls, cfg)


def reference_weight_decay(name: str, base: float = 1e-4) -> float:
    """kchengiva/Shift-GCN main.py: 1e-3 on the shift-GCN layers' linear weights (its Linear_weight),
    0 on their feature masks (Feature_Mask), the configured 1e-4 on everything else."""
    if name.endswith("gcn.weight"):
        return 1e-3
    if name.endswith(".mask"):
        return 0.0
    return base


def _settings_key(settings: ShiftGCNSettings) -> dict:
    """The settings that name a cached encoder; the default recipe stays out, so caches made before
    the recipe switch existed are still found."""
    key = asdict(settings)
    if key["weight_decay_recipe"] == "single":
        del key["weight_decay_recipe"]
    return key


@dataclass
class FrozenFeatures:
    features: torch.Tensor  # [N, W, steps, V] float16
    folder: Path
    pretrained: bool  # False when the cache served them


def encoder_fingerprint(data_fingerprint: str, num_frames: int, train_idx: np.ndarray, classes: np.ndarray,
                        settings: ShiftGCNSettings) -> str:
    return fingerprint({"version": ENCODER_VERSION, "data": data_fingerprint, "num_frames": num_frames,
                        "train_rows": fingerprint(np.asarray(train_idx).tolist()),
                        "classes": np.asarray(classes).tolist(), "settings": _settings_key(settings)})


def _encode(model: ShiftGCN, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Per-person features, averaged over the persons present: [B, (M,) T, V, 3] -> [B, W, T', V]."""
    keypoints, confidence, _, _ = with_person_axis(keypoints, confidence)
    present = present_persons(confidence, *keypoints.shape[:2], keypoints.device)
    rows = present.flatten().nonzero().squeeze(1)  # absent persons are not encoded
    return pool_rows(model.features(fold(keypoints)[rows]), rows // keypoints.shape[1], len(keypoints))


def pretrain(keypoints: torch.Tensor, confidence: torch.Tensor, targets: torch.Tensor, num_classes: int,
             settings: ShiftGCNSettings, device: torch.device) -> ShiftGCN:
    """Cross-entropy on (keypoints, targets in 0..num_classes-1); seeded, so the same inputs give the
    same encoder."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = ShiftGCN(keypoints.shape[-2], num_classes, settings.width).to(device)
    if settings.weight_decay_recipe == "reference":
        params = [{"params": [p], "weight_decay": reference_weight_decay(n, settings.weight_decay)}
                  for n, p in model.named_parameters()]
    else:
        params = [{"params": list(model.parameters()), "weight_decay": settings.weight_decay}]
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=0.9, nesterov=True)
    milestones = [round(m * settings.epochs) for m in MILESTONES]
    steps = math.ceil(len(targets) / settings.batch_size)
    for epoch in tqdm(range(settings.epochs), desc="pretrain shiftgcn", leave=False, disable=None):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * 0.1 ** sum(epoch >= m for m in milestones)
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        for i in range(steps):
            rows = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            if len(rows) < 2:  # batch norm needs two samples
                continue
            kp, conf = keypoints[rows].to(device, torch.float32), confidence[rows].to(device, torch.float32)
            logits = model.fc(_encode(model, kp, conf).mean(dim=(2, 3)))
            loss = F.cross_entropy(logits, targets[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def extract(model: ShiftGCN, keypoints: torch.Tensor, confidence: torch.Tensor, steps: int,
            device: torch.device) -> torch.Tensor:
    """Frozen features of every row, pooled to `steps` time steps: [N, W, steps, V] float16 on CPU."""
    model.eval()
    chunks = []
    for start in range(0, len(keypoints), EXTRACT_BATCH):
        kp = keypoints[start:start + EXTRACT_BATCH].to(device, torch.float32)
        conf = confidence[start:start + EXTRACT_BATCH].to(device, torch.float32)
        feats = _encode(model, kp, conf)
        chunks.append(F.adaptive_avg_pool2d(feats, (steps, feats.shape[-1])).half().cpu())
    return torch.cat(chunks)


def frozen_skeleton_features(keypoints: torch.Tensor, confidence: torch.Tensor, labels: np.ndarray,
                             train_idx: np.ndarray, classes: np.ndarray, settings: ShiftGCNSettings,
                             data_fingerprint: str, cache_dir: Path, device: torch.device) -> FrozenFeatures:
    """The frozen Shift-GCN features of every row of the data; pretrained on rows `train_idx` over
    `classes` only the first time, loaded from the cache afterwards."""
    key = encoder_fingerprint(data_fingerprint, keypoints.shape[-3], train_idx, classes, settings)
    folder = Path(cache_dir) / "encoders" / f"shiftgcn-{key[:16]}"
    features_path = folder / "features.npy"
    if features_path.exists():
        features = torch.from_numpy(np.load(features_path))
        if features.shape[0] == len(keypoints):
            print(f"shiftgcn: frozen features from {folder}")
            return FrozenFeatures(features, folder, pretrained=False)
    print(f"shiftgcn: pretraining on {len(train_idx)} samples of {len(classes)} classes "
          f"({settings.epochs} epochs) -> {folder}")
    column = np.full(int(max(classes.max(), labels.max())) + 1, -1)
    column[classes] = np.arange(len(classes))
    targets = torch.as_tensor(column[labels[train_idx]])
    rows = torch.as_tensor(train_idx)
    model = pretrain(keypoints[rows], confidence[rows], targets, len(classes), settings, device)
    features = extract(model, keypoints, confidence, settings.steps, device)
    with atomic_path(folder / "weights.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(folder / "info.json") as tmp:
        tmp.write_text(json.dumps({"fingerprint": key, "data": data_fingerprint,
                                   "classes": np.asarray(classes).tolist(),
                                   "train_samples": int(len(train_idx)), "settings": asdict(settings),
                                   "version": ENCODER_VERSION, "shape": list(features.shape)}, indent=2))
    with atomic_path(features_path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features.numpy())
    return FrozenFeatures(features, folder, pretrained=True)


def encoder_record(folder: Path) -> dict:
    """A cached encoder as plain values and tensors, for a run's checkpoint: a shared run folder
    must score new clips without the cache that trained it (`posebridge predict`)."""
    info = json.loads((Path(folder) / "info.json").read_text())
    state = torch.load(Path(folder) / "weights.pt", map_location="cpu", weights_only=True)
    return {"fingerprint": info["fingerprint"], "settings": info["settings"], "num_classes": len(info["classes"]),
            "num_joints": int(state["data_bn.weight"].numel() // IN_CHANNELS), "state_dict": state}


def encoder_from_record(record: dict, device: torch.device) -> tuple[ShiftGCN, int]:
    """(the frozen encoder in eval mode, the time steps its features are pooled to)."""
    settings = ShiftGCNSettings(**record["settings"])
    model = ShiftGCN(record["num_joints"], record["num_classes"], settings.width)
    model.load_state_dict(record["state_dict"])
    return model.to(device).eval(), settings.steps
