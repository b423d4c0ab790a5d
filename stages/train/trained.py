"""A finished run's checkpoint -> its model, ready to score: the one place a run's heads are rebuilt.

Evaluation (stages/eval/evaluate.py, through api.py) and prediction (pipeline/predict.py) both start
here; what each adds on top (the frozen encoder's features from the cache, or a new clip's) stays
with them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from posebridge.cache.errors import UserError
from posebridge.stages.train.checkpoint import load_checkpoint
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.heads import ModelArgs, PoseBridge
from posebridge.stages.train.loop import CPU_THREADS, resolve_device


@dataclass
class TrainedModel:
    checkpoint: dict       # everything the run saved (fingerprints, calibration, the frozen encoder, ...)
    config: TrainConfig
    model: PoseBridge      # in eval mode, on `device`
    device: torch.device


def load_trained(path: Path, device: str | None = None) -> TrainedModel:
    """The model of a finished run's checkpoint at `path`, on `device` (default: the run's own)."""
    path = Path(path)
    ckpt = load_checkpoint(path)  # weights_only: a shared run folder cannot run code
    if ckpt.get("calibration") is None:
        raise UserError(f"{path.parent} is from an unfinished run; finish it with posebridge train --resume")
    cfg = TrainConfig.from_dict(ckpt["config"])
    target = resolve_device(device or cfg.device)
    torch.set_num_threads(CPU_THREADS)
    model = PoseBridge(ModelArgs.from_dict(ckpt["model_args"])).to(target)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return TrainedModel(ckpt, cfg, model, target)
