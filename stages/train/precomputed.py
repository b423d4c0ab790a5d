"""The ONE adapter from precomputed skeleton features to the heads' skeleton tokens.

Until the skeleton-encoder interface of issue 9 (Shift-GCN and friends, another branch) lands, a
feature folder's joint x time maps reach the heads here: [B, T', V, C] (channels-last, in the
dataset's `keypoints` slot; feature_folder.py) -> global [B, d], 4 body parts [B, 4, d] and 3
phases [B, 3, d], pooled as DynaPURLS's "partition" loader does (Alchemist0754/DynaPURLS
data/ntu_60.py: the mean over all cells, over each body part's joints, over each time step) and
projected by one shared LayerNorm + Linear. When the encoder interface lands, this module goes and
the features enter it directly.
"""
from __future__ import annotations

import torch
from torch import nn

from posebridge.pipeline.errors import UserError

NUM_SEGMENTS = 3


class PrecomputedSkeleton(nn.Module):
    """Features [B, T', V, C] (+ an ignored confidence) -> global [B,d], parts [B,4,d], segments [B,3,d]."""

    def __init__(self, channels: int, dim: int, part_joints: tuple[tuple[int, ...], ...], num_joints: int):
        super().__init__()
        pool = torch.zeros(len(part_joints), num_joints)
        for p, joints in enumerate(part_joints):
            pool[p, list(joints)] = 1.0 / len(joints)
        self.register_buffer("part_pool", pool, persistent=False)  # [4, V] averaging weights
        self.out = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor, confidence: torch.Tensor | None = None):
        if features.shape[1] < NUM_SEGMENTS:
            raise UserError(f"precomputed features have {features.shape[1]} time steps; the heads need at least "
                            f"{NUM_SEGMENTS}, one per phase")
        features = features.float()
        global_ = features.mean(dim=(1, 2))
        parts = torch.einsum("pv,btvc->bpc", self.part_pool, features) / features.shape[1]
        segments = torch.stack([s.mean(dim=(1, 2)) for s in torch.tensor_split(features, NUM_SEGMENTS, dim=1)], dim=1)
        return tuple(self.norm(self.out(t)) for t in (global_, parts, segments))
