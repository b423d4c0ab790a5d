"""Stage-2 training: one flat loop over on-device tensors (nanoGPT style).

fit() trains the PoseBridge heads on some classes' samples; the data live on the device and a
batch is an index lookup plus the seeded augmentation. What a run does around it (checkpoints,
calibration, evaluation, the run folder) is in pipeline/experiment.py;
evaluation is in stages/eval.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from posebridge.stages import paths
from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import Split
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset
from posebridge.stages.train.encoders.frozen import ShiftGCNSettings, frozen_skeleton_features
from posebridge.stages.train.feature_folder import FeatureDataset
from posebridge.stages.train.heads import ClassTextTensors, ModelArgs, PoseBridge
from posebridge.stages.train.losses import LossWeights, model_loss
from posebridge.stages.train.persons import with_person_axis
from posebridge.stages.train.text_bank import TextBank

CPU_THREADS = 2  # fixed, so CPU results do not depend on the machine's core count


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warmup, then cosine decay to 10% of the base rate."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class DeviceData:
    """The tensors training needs, moved once to the device; batches are index lookups."""

    keypoints: torch.Tensor
    confidence: torch.Tensor
    features: torch.Tensor | None
    heatmaps: torch.Tensor | None
    labels: np.ndarray
    # [N, W, T', V] skeleton features the model reads instead of the keypoints: a frozen encoder's
    # (--skeleton-encoder shiftgcn) or a feature folder's (--features DIR)
    joint_features: torch.Tensor | None = None
    # True for a feature folder: its skeleton features are all there is (its `keypoints` have no
    # channels; they are on the device only so that code asking for the device works unchanged)
    features_only: bool = False
    # the frozen encoder's cache folder (weights.pt, info.json) when joint_features came from one
    encoder_folder: Path | None = None


def to_device(ds: CueDataset, cues: str, device: torch.device) -> DeviceData:
    if ds.joint_features is not None:  # a feature folder
        return _folder_to_device(ds, cues, device)
    need_features, need_heatmaps = cues in ("features", "all"), cues in ("heatmap", "all")
    missing = [name for name, needed, have in (("features", need_features, ds.features is not None),
                                               ("heatmaps", need_heatmaps, ds.heatmaps is not None)) if needed and not have]
    if missing:
        raise UserError(f"--cues {cues} needs cue {' and '.join(missing)}, but data {ds.source_fingerprint[:12]} "
                        f"has none (skeleton-only source); use --cues none")
    return DeviceData(
        ds.keypoints.to(device, torch.float32),
        ds.confidence.to(device, torch.float32),
        ds.features.to(device) if need_features else None,  # float16 until a batch is drawn
        ds.heatmaps.to(device) if need_heatmaps else None,
        ds.labels.cpu().numpy(),
    )


def check_folder_cues(ds: FeatureDataset, cues: str) -> None:
    if cues not in ("none", "all"):
        raise UserError(f"--cues {cues}: a feature folder's cue tokens are one stream; use --cues all or none")
    if cues == "all" and ds.cue_tokens is None:
        raise UserError("the feature folder has no cue tokens (train_cue.npy, val_cue.npy, test_cue.npy "
                        "[N, S, D]); add --cues none to train on its skeleton features")


def _folder_to_device(ds: FeatureDataset, cues: str, device: torch.device) -> DeviceData:
    """A feature folder's maps [N, 1, T', V, C] enter as the model's joint features [N, C, T', V]
    (float16 until a batch is drawn; there are no keypoints to encode); its cue tokens [N, S, D], if
    any, ride in the features slot."""
    check_folder_cues(ds, cues)
    joint = ds.joint_features[:, 0].permute(0, 3, 1, 2).to(device)
    tokens = ds.cue_tokens.to(device) if cues == "all" else None
    return DeviceData(ds.keypoints.to(device), ds.confidence.to(device, torch.float32), tokens, None, ds.labels.cpu().numpy(),
                      joint_features=joint, features_only=True)


def normalise_cells(features: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """[N, C, T', V] with each joint-step cell's C-vector at unit length (an all-zero cell stays
    zero), as feature folders are read (feature_folder.py, after DynaPURLS data/ntu_60.py); in
    chunks, in the input's dtype, so a float16 cache is never copied whole to float32."""
    out = torch.empty_like(features)
    for start in range(0, len(features), chunk):
        out[start:start + chunk] = F.normalize(features[start:start + chunk].float(), dim=1).to(features.dtype)
    return out


def with_encoder_features(cfg: TrainConfig, data: DeviceData, train_idx: np.ndarray, classes: np.ndarray,
                          data_fingerprint: str, encoder_cache: Path | None) -> DeviceData:
    """With --skeleton-encoder shiftgcn: the data plus the features of a Shift-GCN pretrained on
    (train_idx, classes), from the cache when one was trained on exactly those before. Data that
    already carries skeleton features (a feature folder) is returned as it is."""
    if cfg.skeleton_encoder != "shiftgcn" or data.joint_features is not None:
        return data
    frozen = frozen_skeleton_features(data.keypoints, data.confidence, data.labels, train_idx, classes,
                                      ShiftGCNSettings.from_config(cfg), data_fingerprint,
                                      paths.cache_root(encoder_cache), data.keypoints.device)
    features = normalise_cells(frozen.features) if cfg.feature_norm == "cell_l2" else frozen.features
    return dataclasses.replace(data, joint_features=features.to(data.keypoints.device),
                               encoder_folder=frozen.folder)


def class_text_tensors(bank: TextBank, device: torch.device) -> ClassTextTensors:
    return ClassTextTensors(bank.name.to(device), bank.description.to(device), bank.parts.to(device),
                            bank.parts_mask.to(device), bank.temporal.to(device), bank.temporal_mask.to(device))


def model_args(cfg: TrainConfig, ds: CueDataset, bank: TextBank) -> ModelArgs:
    cue_input, cue_token_dim, cue_steps = "joints", 0, cfg.cue_steps
    if ds.joint_features is not None:  # a feature folder: its channels, whatever the encoder setting
        skeleton_input, channels = "features", ds.skeleton_channels
        if ds.cue_tokens is not None:  # its cue tokens, as many steps as it has
            cue_input, cue_token_dim, cue_steps = "tokens", int(ds.cue_tokens.shape[2]), int(ds.cue_tokens.shape[1])
    elif cfg.skeleton_encoder == "shiftgcn":  # the frozen Shift-GCN's features (4x its width)
        skeleton_input, channels = "features", 4 * cfg.shiftgcn_width
    else:
        skeleton_input, channels = "keypoints", 0
    return ModelArgs.from_config(  # the config's fields from cfg; what the data decides here
        cfg,
        num_joints=ds.keypoints.shape[-2],  # [N, M, T, V, 3] (a feature folder: [N, 1, T', V, 0])
        cue_joints=ds.features.shape[-2] if ds.features is not None else len(ds.cue_joints),
        feature_channels=ds.features.shape[-1] if ds.features is not None else 0,
        heatmap_size=ds.heatmaps.shape[-1] if ds.heatmaps is not None else 0,
        skeleton=ds.skeleton, skeleton_layout=getattr(ds, "skeleton_layout", None),
        text_dim=bank.name.shape[1], cue_steps=cue_steps, cue_joint_ids=tuple(int(j) for j in ds.cue_joints),
        skeleton_input=skeleton_input, skeleton_channels=channels, cue_input=cue_input, cue_token_dim=cue_token_dim,
    )


def autocast(device: torch.device):
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def take_batch(data: DeviceData, idx: torch.Tensor, cfg: TrainConfig | None, gen: torch.Generator | None):
    """Index a batch: (keypoints, confidence, features, heatmaps, joint_features). With a generator,
    apply the seeded augmentation (temporal crop + scale jitter) to the per-frame tensors; skeleton
    features (frozen encoder, feature folder) are fixed per clip and pass unchanged."""
    device = data.keypoints.device
    idx = idx.to(device)
    joint = data.joint_features[idx].float() if data.joint_features is not None else None
    if data.features_only:  # a feature folder: nothing per frame to augment (cue tokens, if any, as they are)
        return None, None, None if data.features is None else data.features[idx].float(), None, joint
    kp, conf = data.keypoints[idx], data.confidence[idx]
    feat = data.features[idx].float() if data.features is not None else None
    hm = data.heatmaps[idx].float() if data.heatmaps is not None else None
    if gen is None:
        return kp, conf, feat, hm, joint
    kp, conf, feat, hm = with_person_axis(kp, conf, feat, hm)  # time is axis 2 from here on
    b, t = kp.shape[0], kp.shape[2]  # [B, M, T, ...]: one crop per clip, shared by its persons
    keep = cfg.crop_min + (1.0 - cfg.crop_min) * torch.rand(b, generator=gen)
    length = (keep * t).round().clamp(2, t)
    start = (torch.rand(b, generator=gen) * (t - length + 1)).floor()
    # The crop is stretched back to T frames with a linear blend, as resample() makes the clips, so
    # training sees the same smooth motion as testing (nearest frames would repeat some: zero motion).
    # float64 and whole-frame steps: a crop that keeps every frame is then the clip exactly
    steps = torch.arange(t, dtype=torch.float64)[None] * (length[:, None].double() - 1) / max(t - 1, 1)
    position = (start[:, None].double() + steps).to(device)  # [B, T]
    low = position.floor().clamp(max=t - 2).long()
    frac = (position - low).float()
    scale = (1.0 + cfg.scale_jitter * (2 * torch.rand(b, generator=gen) - 1)).to(device)
    rows = torch.arange(b, device=device)[:, None]

    def crop(x):  # the same frames for every person of a clip
        if x is None:
            return None
        x = x.transpose(1, 2)  # [B, T, M, ...]
        w = frac.view(b, t, *([1] * (x.dim() - 2))).to(x.dtype)
        return (x[rows, low] * (1 - w) + x[rows, low + 1] * w).transpose(1, 2)

    return crop(kp) * scale.view(b, 1, 1, 1, 1), crop(conf), crop(feat), crop(hm), joint


@dataclass
class FitState:
    model: PoseBridge
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffling + augmentation; saved so a resumed run continues exactly
    epoch: int = 0  # epochs completed
    # --lr-schedule plateau: stepped once per epoch on the validation loss (PURLS monitors val-loss)
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    val_losses: list = dataclasses.field(default_factory=list)  # per epoch, when a validation side is given
    # --selection best_val_loss: {"epoch", "val_loss", "model" (state dict on the CPU)} of the best epoch
    best: dict | None = None

    def select(self, cfg: TrainConfig) -> None:
        """Load the kept epoch's weights (best validation loss) into the model; `last` keeps them."""
        if cfg.selection == "best_val_loss" and self.best is not None:
            self.model.load_state_dict(self.best["model"])


# PURLS model/purls.py configure_optimizers: ReduceLROnPlateau(mode min, factor 0.1, patience 25, cooldown 3)
PLATEAU = {"mode": "min", "factor": 0.1, "patience": 25, "cooldown": 3}


def new_fit_state(cfg: TrainConfig, args: ModelArgs, device: torch.device, seed: int) -> FitState:
    seed_everything(seed)
    model = PoseBridge(args).to(device)
    with torch.no_grad():  # the same float32 arithmetic as the model's own start (1 / 0.07)
        model.logit_scale.copy_(torch.tensor(1.0 / cfg.temperature_init).log())
    # Weight decay on weight matrices only: not on biases, norms, embeddings (token_type is the
    # skeleton tokens' type embedding) or the learned adjacency.
    decays = {n: p.ndim >= 2 and not any(k in n for k in ("embedding", "adjacency", "token_type"))
              for n, p in model.named_parameters()}
    decay = [p for n, p in model.named_parameters() if decays[n]]
    no_decay = [p for n, p in model.named_parameters() if not decays[n]]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # adam: PURLS's plain Adam (its presets set weight decay 0); adamw: decoupled decay
    optimizer = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW)(groups, lr=cfg.lr)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **PLATEAU)
                 if cfg.lr_schedule == "plateau" else None)
    return FitState(model, optimizer, torch.Generator().manual_seed(seed), scheduler=scheduler)


@torch.no_grad()
def validation_loss(model: PoseBridge, cfg: TrainConfig, data: DeviceData, idx: np.ndarray, classes: np.ndarray,
                    targets_all: torch.Tensor, class_texts: ClassTextTensors, weights: LossWeights) -> float:
    """The training loss on the validation rows (seen classes only), in eval mode, batch by batch in
    row order: what PURLS's ModelCheckpoint and ReduceLROnPlateau monitor (val-loss)."""
    model.eval()
    total, count = 0.0, 0
    rows = torch.as_tensor(idx)
    for start in range(0, len(idx), cfg.batch_size):
        pos = torch.arange(start, min(start + cfg.batch_size, len(idx)))
        kp, conf, feat, hm, joint = take_batch(data, rows[pos], cfg, None)
        visual = model(kp, conf, feat, hm, joint)
        protos = model.prototypes(class_texts.name, class_texts.description)
        loss, _ = model_loss(model, visual, protos, class_texts, targets_all[pos.to(targets_all.device)], weights)
        total += float(loss) * len(pos)
        count += len(pos)
    model.train()
    return total / max(count, 1)


def fit(state: FitState, cfg: TrainConfig, data: DeviceData, train_idx: np.ndarray, classes: np.ndarray,
        texts: ClassTextTensors, epochs: int, on_epoch: Callable[[FitState, float], None] | None = None,
        desc: str = "train", val_idx: np.ndarray | None = None) -> list[float]:
    """Train on the samples train_idx over the classes `classes` (prototypes of those only).

    val_idx (seen classes only): with --lr-schedule plateau or --selection best_val_loss its loss is
    computed after every epoch (without it: the training loss steers the plateau schedule, and the
    last epoch is kept)."""
    if len(train_idx) == 0:
        raise UserError("no training samples for the seen classes of this split; check the data's labels "
                        "and split (does the cache hold the split's dataset?)")
    device = data.keypoints.device
    column = np.full(int(max(classes.max(), data.labels.max())) + 1, -1)
    column[classes] = np.arange(len(classes))
    targets_all = torch.as_tensor(column[data.labels[train_idx]], device=device)
    train_idx_t = torch.as_tensor(train_idx)
    class_texts = texts.rows(classes)
    weights = LossWeights.from_config(cfg)
    # the validation loss is computed only where it steers something (it costs a pass per epoch)
    has_val = (val_idx is not None and len(val_idx) > 0
               and (cfg.selection == "best_val_loss" or cfg.lr_schedule == "plateau"))
    if has_val and not np.isin(data.labels[val_idx], classes).all():
        raise UserError("the validation rows must be of the training classes (checkpoint selection sees seen classes only)")
    val_targets = torch.as_tensor(column[data.labels[val_idx]], device=device) if has_val else None
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total, warmup = epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    losses = []
    bar = tqdm(range(state.epoch, epochs), desc=desc, leave=False, disable=None)
    for epoch in bar:
        state.model.train()
        order = torch.randperm(len(train_idx), generator=state.generator)
        running = 0.0
        for i in range(steps_per_epoch):
            pos = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            if len(pos) < 2 and cfg.projection == "shared_mlp":  # its batch norm needs two samples
                continue
            if state.scheduler is None:  # cosine: set per step; plateau: the scheduler owns the rate
                for group in state.optimizer.param_groups:
                    group["lr"] = lr_at(epoch * steps_per_epoch + i, total, warmup, cfg.lr)
            kp, conf, feat, hm, joint = take_batch(data, train_idx_t[pos], cfg, state.generator)
            with autocast(device):
                visual = state.model(kp, conf, feat, hm, joint)
                protos = state.model.prototypes(class_texts.name, class_texts.description)
                loss, _ = model_loss(state.model, visual, protos, class_texts, targets_all[pos.to(device)], weights)
            state.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(state.optimizer)
            if cfg.grad_clip > 0:  # 0: no clipping (PURLS)
                torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
            scaler.step(state.optimizer)
            scaler.update()
            state.model.clamp_temperatures()
            running += float(loss.detach())
        state.epoch = epoch + 1
        losses.append(running / steps_per_epoch)
        monitored = losses[-1]
        if has_val:
            monitored = validation_loss(state.model, cfg, data, val_idx, classes, val_targets, class_texts, weights)
            state.val_losses.append(monitored)
            if cfg.selection == "best_val_loss" and (state.best is None or monitored < state.best["val_loss"]):
                state.best = {"epoch": state.epoch, "val_loss": monitored,
                              "model": {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}}
        if state.scheduler is not None:
            state.scheduler.step(monitored)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if on_epoch is not None:
            on_epoch(state, losses[-1])
    return losses


def check_compatible(ds: CueDataset, split: Split, bank: TextBank, cfg: TrainConfig) -> None:
    if list(bank.class_names) != list(split.class_names):
        raise UserError(f"text bank classes do not match split {split.name}'s class list; rebuild the text "
                        f"bank for this split (posebridge.stages.train.text.build_text_bank)")
    if ds.joint_features is not None:  # a feature folder: pooled in time already; its T' is checked when read
        return
    if ds.keypoints.shape[-3] != cfg.num_frames:
        raise UserError(f"data has T={ds.keypoints.shape[-3]} frames but num_frames={cfg.num_frames}; "
                        f"load it with num_frames={cfg.num_frames}")
    # 3 segments must be left after the encoder's temporal pooling (Shift-GCN strides 4x)
    shortest = 12 if cfg.skeleton_encoder == "shiftgcn" else 3 * cfg.skeleton_pool * 2 ** cfg.layers
    if cfg.num_frames < shortest:
        raise UserError(f"num_frames={cfg.num_frames} is too short for skeleton encoder {cfg.skeleton_encoder} "
                        f"(skeleton_pool={cfg.skeleton_pool}, layers={cfg.layers}); use num_frames >= {shortest}")
