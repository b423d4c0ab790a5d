"""Embedding: a trained model's visual embeddings of some samples, in evaluation mode, batch by batch."""
from __future__ import annotations

import numpy as np
import torch

from posebridge.stages.train.api import DeviceData, PoseBridge, Visual, autocast, take_batch

EVAL_BATCH = 256


@torch.no_grad()
def embed(model: PoseBridge, data: DeviceData, idx: np.ndarray) -> Visual:
    """Visual embeddings (float32, on the model's device) of the rows `idx`, in that order; no augmentation."""
    model.eval()
    device = data.keypoints.device
    chunks = []
    for start in range(0, len(idx), EVAL_BATCH):
        with autocast(device):
            visual = model(*take_batch(data, torch.as_tensor(idx[start:start + EVAL_BATCH]), None, None))
        chunks.append(visual.map(lambda t: t.float()))
    if not chunks:
        d = model.args.text_dim
        return Visual(torch.zeros(0, d), torch.zeros(0, 4, d), torch.zeros(0, 3, d),
                      torch.zeros(0, 0, model.args.dim) if model.args.adaptive_parts else None)
    return Visual(*(None if parts[0] is None else torch.cat(parts) for parts in zip(*chunks)))
