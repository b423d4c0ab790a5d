"""Checkpoints: written atomically (temporary file + rename), read back on the CPU."""
from __future__ import annotations

from pathlib import Path

import torch

from posebridge.pipeline.atomic import atomic_path
from posebridge.pipeline.errors import UserError

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename: a crash mid-write never leaves a torn checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    """The checkpoint at `path`, on the CPU (the generator state must stay a CPU tensor; weights and
    optimizer state move on load_state_dict)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; train first (posebridge train) or fix the path")
    return torch.load(path, map_location="cpu", weights_only=False)
