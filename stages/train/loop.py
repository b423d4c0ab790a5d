"""Stage-2 training and evaluation: one flat loop over on-device tensors (nanoGPT style).

train() fits the PoseBridge heads on the seen classes, checkpoints every epoch (atomically, with
the config and the fingerprints of data and text bank), picks the GZSL calibration gamma on
validation data with an auxiliary pseudo-unseen model, scores the test sets and writes the run
folder. evaluate() repeats the scoring from a checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from posebridge.pipeline.atomic import atomic_path
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.splits.registry import Split
from posebridge.stages.eval import metrics as M
from posebridge.stages.eval.report import write_run_report
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset, partition
from posebridge.pipeline import paths
from posebridge.stages.train.encoders import resolve_encoder
from posebridge.stages.train.encoders.frozen import ShiftGCNSettings, frozen_skeleton_features
from posebridge.stages.train.heads import ClassTextTensors, ModelArgs, PoseBridge, Visual, refine_prototypes
from posebridge.stages.train.losses import LossWeights, model_loss
from posebridge.stages.train.persons import with_person_axis
from posebridge.stages.train.text_bank import TextBank

CHECKPOINT = "checkpoint.pt"
CPU_THREADS = 2  # fixed, so CPU results do not depend on the machine's core count
EVAL_BATCH = 256


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
    # [N, W, T', V] frozen encoder features (--skeleton-encoder shiftgcn); the model then reads
    # these instead of the keypoints
    joint_features: torch.Tensor | None = None


def to_device(ds: CueDataset, cues: str, device: torch.device) -> DeviceData:
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


def shiftgcn_settings(cfg: TrainConfig) -> ShiftGCNSettings:
    return ShiftGCNSettings(width=cfg.shiftgcn_width, epochs=cfg.shiftgcn_epochs, lr=cfg.shiftgcn_lr,
                            steps=cfg.shiftgcn_steps)


def with_encoder_features(cfg: TrainConfig, data: DeviceData, train_idx: np.ndarray, classes: np.ndarray,
                          data_fingerprint: str, encoder_cache: Path | None) -> DeviceData:
    """With --skeleton-encoder shiftgcn: the data plus the features of a Shift-GCN pretrained on
    (train_idx, classes), from the cache when one was trained on exactly those before."""
    if cfg.skeleton_encoder != "shiftgcn":
        return data
    frozen = frozen_skeleton_features(data.keypoints, data.confidence, data.labels, train_idx, classes,
                                      shiftgcn_settings(cfg), data_fingerprint, paths.cache_root(encoder_cache),
                                      data.keypoints.device)
    return dataclasses.replace(data, joint_features=frozen.features.to(data.keypoints.device))


def class_text_tensors(bank: TextBank, device: torch.device) -> ClassTextTensors:
    return ClassTextTensors(bank.name.to(device), bank.description.to(device), bank.parts.to(device),
                            bank.parts_mask.to(device), bank.temporal.to(device), bank.temporal_mask.to(device))


def model_args(cfg: TrainConfig, ds: CueDataset, bank: TextBank) -> ModelArgs:
    return ModelArgs(
        num_joints=ds.keypoints.shape[-2],  # [N, M, T, V, 3]
        cue_joints=ds.features.shape[-2] if ds.features is not None else len(ds.cue_joints),
        feature_channels=ds.features.shape[-1] if ds.features is not None else 0,
        heatmap_size=ds.heatmaps.shape[-1] if ds.heatmaps is not None else 0,
        skeleton=ds.skeleton,
        text_dim=bank.name.shape[1], dim=cfg.dim, joint_dim=cfg.joint_dim, layers=cfg.layers, heads=cfg.heads,
        cues=cfg.cues, motion_bone=cfg.motion_bone, proto_mix=cfg.proto_mix, skeleton_pool=cfg.skeleton_pool,
        cue_steps=cfg.cue_steps, cue_joint_ids=tuple(int(j) for j in ds.cue_joints),
        skeleton_input="features" if cfg.skeleton_encoder == "shiftgcn" else "keypoints",
        skeleton_channels=4 * cfg.shiftgcn_width if cfg.skeleton_encoder == "shiftgcn" else 0,
        adaptive_parts=cfg.adaptive_parts, symmetric_loss=cfg.symmetric_loss,
    )


def _autocast(device: torch.device):
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _batch(data: DeviceData, idx: torch.Tensor, cfg: TrainConfig | None, gen: torch.Generator | None):
    """Index a batch: (keypoints, confidence, features, heatmaps, joint_features). With a generator,
    apply the seeded augmentation (temporal crop + scale jitter) to the per-frame tensors; frozen
    encoder features are fixed per clip and pass unchanged."""
    device = data.keypoints.device
    idx = idx.to(device)
    kp, conf = data.keypoints[idx], data.confidence[idx]
    feat = data.features[idx].float() if data.features is not None else None
    hm = data.heatmaps[idx].float() if data.heatmaps is not None else None
    joint = data.joint_features[idx].float() if data.joint_features is not None else None
    if gen is None:
        return kp, conf, feat, hm, joint
    kp, conf, feat, hm = with_person_axis(kp, conf, feat, hm)  # time is axis 2 from here on
    b, t = kp.shape[0], kp.shape[2]
    keep = cfg.crop_min + (1.0 - cfg.crop_min) * torch.rand(b, generator=gen)
    length = (keep * t).round().clamp(2, t)
    start = (torch.rand(b, generator=gen) * (t - length + 1)).floor()
    frames = (start[:, None] + (torch.linspace(0, 1, t)[None] * (length[:, None] - 1)).round()).long().to(device)
    scale = (1.0 + cfg.scale_jitter * (2 * torch.rand(b, generator=gen) - 1)).to(device)
    rows = torch.arange(b, device=device)[:, None]

    def crop(x):  # the same frames for every person of a clip
        return None if x is None else x.transpose(1, 2)[rows, frames].transpose(1, 2)

    kp = crop(kp) * scale.view(b, 1, 1, 1, 1)
    return kp, crop(conf), crop(feat), crop(hm), joint


@dataclass
class FitState:
    model: PoseBridge
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffling + augmentation; saved so a resumed run continues exactly
    epoch: int = 0  # epochs completed


def new_fit_state(cfg: TrainConfig, args: ModelArgs, device: torch.device, seed: int) -> FitState:
    seed_everything(seed)
    model = PoseBridge(args).to(device)
    # Weight decay on weight matrices only: not on biases, norms, embeddings or the learned adjacency.
    decays = {n: p.ndim >= 2 and "embedding" not in n and "adjacency" not in n for n, p in model.named_parameters()}
    decay = [p for n, p in model.named_parameters() if decays[n]]
    no_decay = [p for n, p in model.named_parameters() if not decays[n]]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    return FitState(model, optimizer, torch.Generator().manual_seed(seed))


def fit(state: FitState, cfg: TrainConfig, data: DeviceData, train_idx: np.ndarray, classes: np.ndarray,
        texts: ClassTextTensors, epochs: int, on_epoch: Callable[[FitState, float], None] | None = None,
        desc: str = "train") -> list[float]:
    """Train on the samples train_idx over the classes `classes` (prototypes of those only)."""
    if len(train_idx) == 0:
        raise UserError("no training samples for the seen classes of this split; check the data's labels "
                        "and split (does the cache hold the split's dataset?)")
    device = data.keypoints.device
    column = np.full(int(max(classes.max(), data.labels.max())) + 1, -1)
    column[classes] = np.arange(len(classes))
    targets_all = torch.as_tensor(column[data.labels[train_idx]], device=device)
    train_idx_t = torch.as_tensor(train_idx)
    class_texts = texts.rows(classes)
    weights = LossWeights(cfg.w_global, cfg.w_part, cfg.w_temporal)
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
            for group in state.optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + i, total, warmup, cfg.lr)
            kp, conf, feat, hm, joint = _batch(data, train_idx_t[pos], cfg, state.generator)
            with _autocast(device):
                visual = state.model(kp, conf, feat, hm, joint)
                protos = state.model.prototypes(class_texts.name, class_texts.description)
                loss, _ = model_loss(state.model, visual, protos, class_texts, targets_all[pos.to(device)], weights)
            state.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(state.optimizer)
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
            scaler.step(state.optimizer)
            scaler.update()
            running += float(loss.detach())
        state.epoch = epoch + 1
        losses.append(running / steps_per_epoch)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if on_epoch is not None:
            on_epoch(state, losses[-1])
    return losses


@torch.no_grad()
def embed(model: PoseBridge, data: DeviceData, idx: np.ndarray) -> Visual:
    model.eval()
    device = data.keypoints.device
    chunks = []
    for start in range(0, len(idx), EVAL_BATCH):
        with _autocast(device):
            visual = model(*_batch(data, torch.as_tensor(idx[start:start + EVAL_BATCH]), None, None))
        chunks.append(visual.map(lambda t: t.float()))
    if not chunks:
        d = model.args.text_dim
        return Visual(torch.zeros(0, d), torch.zeros(0, 4, d), torch.zeros(0, 3, d),
                      torch.zeros(0, 0, model.args.dim) if model.args.adaptive_parts else None)
    return Visual(*(None if parts[0] is None else torch.cat(parts) for parts in zip(*chunks)))


@torch.no_grad()
def score(model: PoseBridge, visual: Visual, texts: ClassTextTensors, classes: np.ndarray, cfg: TrainConfig,
          refine: np.ndarray | None = None) -> np.ndarray:
    """Scaled scores [N, len(classes)]; with `refine` (bool per class) and cfg.ttr, refined first."""
    rows = texts.rows(classes)
    protos = model.prototypes(rows.name, rows.description)
    visual = visual.map(lambda t: t.to(protos.device))

    def scores(p):
        return model.scale() * model.class_scores(visual, p, rows, cfg.score_part, cfg.score_temporal)

    logits = scores(protos)
    if cfg.ttr and refine is not None and len(visual.global_):
        protos = refine_prototypes(visual.global_, protos, logits, torch.as_tensor(refine, device=protos.device),
                                   cfg.ttr_per_class, cfg.ttr_min_conf, cfg.ttr_step)
        logits = scores(protos)
    return logits.float().cpu().numpy()


def _columns(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    lookup = {int(c): i for i, c in enumerate(classes)}
    return np.array([lookup[int(y)] for y in labels], dtype=np.int64)


def pseudo_unseen_classes(split: Split, seed: int) -> np.ndarray:
    """Seen classes held out as stand-ins for the unseen ones: as many as the split has unseen
    (capped at half the seen classes so the auxiliary model keeps something to learn), by seed."""
    seen = np.array(split.seen)
    count = min(len(split.unseen), len(seen) // 2)
    return np.sort(np.random.default_rng(seed).choice(seen, size=count, replace=False))


def calibrate_gamma(cfg: TrainConfig, args: ModelArgs, data: DeviceData, parts: dict, split: Split,
                    texts: ClassTextTensors, data_fingerprint: str = "", encoder_cache: Path | None = None) -> dict:
    """SynSE-style: train an auxiliary model without the pseudo-unseen seen classes, score the
    validation samples of all seen classes, and take the gamma that maximises H between the
    pseudo-unseen and the rest. Touches only train and validation samples. Returns a record with
    "gamma" and how it was found."""
    if cfg.gzsl_calibration == "none":
        return {"method": "none", "gamma": 0.0}
    seen = np.array(split.seen)
    pseudo = pseudo_unseen_classes(split, cfg.seed)
    val_idx = parts["val"]
    val_pseudo = np.isin(data.labels[val_idx], pseudo)
    info = {"method": "pseudo_unseen", "pseudo_unseen": pseudo.tolist(), "val_samples": int(len(val_idx))}
    if len(pseudo) == 0 or not val_pseudo.any() or val_pseudo.all():
        return {**info, "gamma": 0.0, "note": "validation lacks pseudo-unseen or remaining seen samples; gamma = 0"}
    kept = np.setdiff1d(seen, pseudo)
    train_idx = parts["train"][np.isin(data.labels[parts["train"]], kept)]
    # A frozen encoder must not have seen the pseudo-unseen classes either (SynSE trains its
    # validation-split encoders the same way): its own pretraining, cached like the main one.
    data = with_encoder_features(cfg, data, train_idx, kept, data_fingerprint, encoder_cache)
    state = new_fit_state(cfg, args, data.keypoints.device, cfg.seed + 1)
    fit(state, cfg, data, train_idx, kept, texts, cfg.calibration_epochs or cfg.epochs, desc="calibrate")
    val_scores = score(state.model, embed(state.model, data, val_idx), texts, seen, cfg)
    gamma = M.choose_gamma(val_scores, _columns(data.labels[val_idx], seen), ~np.isin(seen, pseudo))
    return {**info, "gamma": gamma}


def compute_metrics(model: PoseBridge, cfg: TrainConfig, data: DeviceData, parts: dict, split: Split,
                    texts: ClassTextTensors, gamma: float) -> tuple[dict, dict]:
    """ZSL on the unseen test samples, GZSL (raw and calibrated) on all test samples, seen-val top-1.

    Returns (metrics for metrics.json, details for the plots)."""
    seen, unseen = np.array(split.seen), np.array(split.unseen)
    out: dict = {}
    # The ZSL samples are the unseen-class part of the GZSL samples: embed the test side once.
    gzsl_idx, zsl_idx = parts["test_gzsl"], parts["test_zsl"]
    test_visual = embed(model, data, gzsl_idx)
    rows = torch.as_tensor(np.searchsorted(gzsl_idx, zsl_idx))
    zsl_labels = _columns(data.labels[zsl_idx], unseen)
    zsl_scores = score(model, test_visual.map(lambda t: t[rows]), texts, unseen, cfg,
                       refine=np.ones(len(unseen), bool))
    zsl_preds = zsl_scores.argmax(1) if len(zsl_idx) else np.zeros(0, np.int64)
    per_class = M.per_class_accuracy(zsl_preds, zsl_labels, len(unseen))
    out["zsl"] = {**M.zsl_topk(zsl_scores, zsl_labels), "mean_class_acc": M.mean_class_accuracy(zsl_preds, zsl_labels, len(unseen)),
                  "samples": int(len(zsl_idx))}
    both = np.array(sorted(set(seen.tolist()) | set(unseen.tolist())))
    seen_mask = np.isin(both, seen)
    gzsl_scores = score(model, test_visual, texts, both, cfg, refine=~seen_mask)
    gzsl_labels = _columns(data.labels[gzsl_idx], both)
    out["gzsl"] = {**M.gzsl(gzsl_scores, gzsl_labels, seen_mask, gamma), "samples": int(len(gzsl_idx))}
    out["gzsl_uncalibrated"] = M.gzsl(gzsl_scores, gzsl_labels, seen_mask, 0.0)
    if len(parts["val"]):
        val_scores = score(model, embed(model, data, parts["val"]), texts, seen, cfg)
        out["val_seen_top1"] = M.zsl_topk(val_scores, _columns(data.labels[parts["val"]], seen), ks=(1,))["top1"]
    rows_both = texts.rows(both)
    details = {
        "unseen_names": [split.class_names[i] for i in unseen],
        "confusion": M.confusion_matrix(zsl_preds, zsl_labels, len(unseen)),
        "per_class": per_class,
        # For the report's embedding plot: test embeddings next to every class's text prototype.
        "embedding": {"points": test_visual.global_.cpu().numpy(), "labels": gzsl_labels,
                      "prototypes": model.prototypes(rows_both.name, rows_both.description).detach().float().cpu().numpy(),
                      "names": [split.class_names[i] for i in both], "seen": seen_mask},
    }
    out["zsl_per_class"] = {name: (None if math.isnan(a) else float(a)) for name, a in zip(details["unseen_names"], per_class)}
    return out, details


def _fingerprints(ds: CueDataset, split: Split, bank: TextBank, cfg: TrainConfig) -> dict:
    # data_layout: what `posebridge predict` checks a new video's extractor against.
    return {"data": ds.source_fingerprint, "text_bank": bank.fingerprint, "text_encoder": cfg.text_encoder,
            "split": split.name, "split_source": split.source, "split_assumption": split.assumption,
            "data_layout": ds.layout}


def _save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename: a crash mid-write never leaves a torn checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _check_compatible(ds: CueDataset, split: Split, bank: TextBank, cfg: TrainConfig) -> None:
    if list(bank.class_names) != list(split.class_names):
        raise UserError(f"text bank classes do not match split {split.name}'s class list; rebuild the text "
                        f"bank for this split (posebridge.stages.train.text.build_text_bank)")
    if ds.keypoints.shape[-3] != cfg.num_frames:
        raise UserError(f"data has T={ds.keypoints.shape[-3]} frames but num_frames={cfg.num_frames}; "
                        f"load it with num_frames={cfg.num_frames}")
    # 3 segments must be left after the encoder's temporal pooling (Shift-GCN strides 4x)
    shortest = 12 if cfg.skeleton_encoder == "shiftgcn" else 3 * cfg.skeleton_pool * 2 ** cfg.layers
    if cfg.num_frames < shortest:
        raise UserError(f"num_frames={cfg.num_frames} is too short for skeleton encoder {cfg.skeleton_encoder} "
                        f"(skeleton_pool={cfg.skeleton_pool}, layers={cfg.layers}); use num_frames >= {shortest}")


def _load_resume(path: Path, cfg: TrainConfig, fingerprints: dict) -> dict:
    # On CPU: the generator state must stay a CPU tensor; weights and optimizer state move on load.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    saved = TrainConfig.from_dict(ckpt["config"]).to_dict()
    for key, value in cfg.to_dict().items():
        if key != "device" and saved.get(key) != value:
            raise UserError(f"{path} was made with {key}={saved.get(key)!r}, not {value!r}; "
                            f"drop --resume or use another run folder")
    for key in ("data", "text_bank", "split"):
        if ckpt["fingerprints"][key] != fingerprints[key]:
            raise UserError(f"{path} was trained on another {key} ({ckpt['fingerprints'][key][:16]}); "
                            f"drop --resume or use another run folder")
    return ckpt


def train(cfg: TrainConfig, dataset: CueDataset, split: Split, text_bank: TextBank, run_dir: Path,
          resume: bool = False, encoder_cache: Path | None = None) -> dict:
    """encoder_cache: where frozen encoder features are cached (default: the cue cache root)."""
    cfg = dataclasses.replace(cfg.validate(), skeleton_encoder=resolve_encoder(cfg.skeleton_encoder, split.dataset))
    _check_compatible(dataset, split, text_bank, cfg)
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.set_num_threads(CPU_THREADS)
    if device.type == "cuda":  # CPU kernels used here are deterministic already (and the switch costs seconds)
        torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"train {split.name} on {device}: {cfg}")

    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    seen = np.array(split.seen)
    train_idx = parts["train"]
    data = with_encoder_features(cfg, to_device(dataset, cfg.cues, device), train_idx, seen,
                                 dataset.source_fingerprint, encoder_cache)
    texts = class_text_tensors(text_bank, device)
    args = model_args(cfg, dataset, text_bank)
    fingerprints = _fingerprints(dataset, split, text_bank, cfg)
    state = new_fit_state(cfg, args, device, cfg.seed)
    ckpt_path = run_dir / CHECKPOINT
    history: list[float] = []
    gamma_info: dict | None = None
    if resume and not ckpt_path.exists():
        print(f"no checkpoint in {run_dir} to resume from: starting at epoch 1")
    if resume and ckpt_path.exists():
        ckpt = _load_resume(ckpt_path, cfg, fingerprints)
        state.model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.generator.set_state(ckpt["generator"])
        state.epoch, history, gamma_info = ckpt["epoch"], ckpt["losses"], ckpt.get("calibration")

    def checkpoint(s: FitState, loss: float | None, calibration: dict | None = None) -> None:
        if loss is not None:
            history.append(loss)
        _save_checkpoint(ckpt_path, {
            "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
            "generator": s.generator.get_state(), "epoch": s.epoch, "losses": history,
            "config": cfg.to_dict(), "model_args": args.to_dict(), "fingerprints": fingerprints,
            "calibration": calibration,
        })

    fit(state, cfg, data, train_idx, seen, texts, cfg.epochs, on_epoch=checkpoint)
    if gamma_info is None:
        gamma_info = calibrate_gamma(cfg, args, data, parts, split, texts, dataset.source_fingerprint, encoder_cache)
        checkpoint(state, None, gamma_info)
    metrics, details = compute_metrics(state.model, cfg, data, parts, split, texts, gamma_info["gamma"])
    metrics.update({
        "split": split.name, "cues": cfg.cues, "seed": cfg.seed, "epochs": state.epoch,
        "train_loss": history[-1] if history else math.nan, "calibration": gamma_info,
        "samples": {k: int(len(v)) for k, v in parts.items()}, "seconds": round(time.perf_counter() - started, 2),
    })
    write_run_report(run_dir, cfg.to_dict(), fingerprints, metrics, details)
    return metrics


def evaluate(checkpoint: Path, dataset: CueDataset, split: Split, text_bank: TextBank,
             encoder_cache: Path | None = None) -> dict:
    """Score a trained run's checkpoint again (same partition, same calibration gamma)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise UserError(f"no checkpoint at {checkpoint}; train first (posebridge train) or fix the path")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(ckpt["config"])
    if ckpt["fingerprints"]["split"] != split.name:
        raise UserError(f"{checkpoint} was trained for split {ckpt['fingerprints']['split']}, not {split.name}")
    if ckpt["fingerprints"]["text_bank"] != text_bank.fingerprint:
        raise UserError(f"{checkpoint} was trained with another text bank; rebuild it with text encoder "
                        f"'{cfg.text_encoder}' for split {split.name}")
    if ckpt.get("calibration") is None:
        raise UserError(f"{checkpoint} is from an unfinished run; finish it with posebridge train --resume")
    _check_compatible(dataset, split, text_bank, cfg)
    device = resolve_device(cfg.device)
    torch.set_num_threads(CPU_THREADS)
    known = {f.name for f in dataclasses.fields(ModelArgs)}
    model = PoseBridge(ModelArgs(**{k: v for k, v in ckpt["model_args"].items() if k in known})).to(device)
    model.load_state_dict(ckpt["model"])
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    data = with_encoder_features(cfg, to_device(dataset, cfg.cues, device), parts["train"], np.array(split.seen),
                                 dataset.source_fingerprint, encoder_cache)
    texts = class_text_tensors(text_bank, device)
    metrics, _ = compute_metrics(model, cfg, data, parts, split, texts, ckpt["calibration"]["gamma"])
    metrics.update({"split": split.name, "cues": cfg.cues, "seed": cfg.seed, "epochs": ckpt["epoch"],
                    "data_matches_training": dataset.source_fingerprint == ckpt["fingerprints"]["data"]})
    return metrics
