"""Checkpoints: written atomically, read back without running code from the file.

Run folders get shared, and torch.load(weights_only=False) unpickles whatever a file holds, code
included. A checkpoint holds only tensors, the optimizer's state and plain JSON-like values
(config, model arguments, fingerprints, calibration: dicts, lists, str, int, float, bool, None),
all of which torch's weights-only unpickler allows, so no type needs allow-listing: it loads with
weights_only=True and any other object in the file is refused before it is built. Keep numpy
values out of payloads (convert with .tolist() / float()), or they would be refused too.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from posebridge.cache.atomic import atomic_path
from posebridge.cache.errors import UserError

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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise UserError(f"{path} holds objects other than tensors and plain values{what}, so it was not loaded; "
                        f"use a checkpoint written by `posebridge train`") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"{path} is not a readable checkpoint ({err}); train again into this run folder") from None
