"""The small GCN: a learned-adjacency graph block + strided depthwise temporal conv, trained with the
heads from scratch. The fast option, and the synthetic demo's default."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _adjacency(parents: tuple[int, ...]) -> torch.Tensor:
    """Row-normalised skeleton adjacency with self loops: the starting point of the learned one."""
    v = len(parents)
    adj = torch.eye(v)
    for child, parent in enumerate(parents):
        adj[child, parent] = adj[parent, child] = 1.0
    return adj / adj.sum(1, keepdim=True)


def pool_time(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average non-overlapping groups of `factor` frames along dim 1 (a remainder shorter than a
    group is dropped). Skeleton motion is smooth at 64 frames: this cuts the encoders' work by the
    factor at little cost."""
    if factor <= 1:
        return x
    steps = x.shape[1] // factor
    return x[:, : steps * factor].unflatten(1, (steps, factor)).mean(dim=2)


class GraphTemporalBlock(nn.Module):
    """Learned-adjacency graph mixing over joints, then a strided depthwise-separable temporal conv.

    Works in ST-GCN's [B, W, T, V] layout with batch norm: every op runs on contiguous channels-first
    tensors, which is several times faster on CPU than LayerNorm over [B, T, V, W] with permutes.
    """

    def __init__(self, parents: tuple[int, ...], width: int, kernel: int = 5):
        super().__init__()
        self.adjacency = nn.Parameter(_adjacency(parents).T.contiguous())  # right-multiplied: h @ A^T
        self.spatial = nn.Sequential(nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.GELU())
        self.temporal = nn.Sequential(
            nn.Conv2d(width, width, (kernel, 1), stride=(2, 1), padding=(kernel // 2, 0), groups=width),
            nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.GELU())

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, W, T, V] -> [B, W, ceil(T/2), V]
        h = h + self.spatial(h @ self.adjacency)
        return halve_time(h) + self.temporal(h)


def halve_time(h: torch.Tensor) -> torch.Tensor:
    """[B, W, T, V] -> [B, W, ceil(T/2), V], the mean of each pair of frames (an odd last frame alone):
    equal to avg_pool2d((2, 1), ceil_mode=True) bit for bit, and 3x faster forward + backward on CPU."""
    if h.shape[2] % 2:
        h = torch.cat([h, h[:, :, -1:]], dim=2)
    return h.unflatten(2, (h.shape[2] // 2, 2)).mean(dim=3)


class SmallGCN(nn.Module):
    """keypoints [B, T, V, 3] + confidence [B, T, V] (persons folded into B) -> [B, W, T', V]."""

    def __init__(self, parents: tuple[int, ...], width: int = 32, layers: int = 2, motion_bone: bool = True,
                 frame_pool: int = 2):
        super().__init__()
        num_joints = len(parents)
        self.motion_bone = motion_bone
        self.frame_pool = frame_pool
        self.out_channels = width
        self.register_buffer("parents", torch.tensor(parents), persistent=False)
        in_channels = 3 + 1 + (6 if motion_bone else 0)
        self.embed = nn.Conv2d(in_channels, width, 1)  # the per-joint linear embedding
        self.joint_embedding = nn.Parameter(torch.randn(1, width, 1, num_joints) * 0.02)
        self.blocks = nn.ModuleList(GraphTemporalBlock(parents, width) for _ in range(layers))

    def _inputs(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        channels = [keypoints, confidence.unsqueeze(-1)]
        if self.motion_bone:
            motion = F.pad(keypoints[:, 1:] - keypoints[:, :-1], (0, 0, 0, 0, 0, 1))
            bone = keypoints - keypoints[:, :, self.parents]
            channels += [motion, bone]
        return torch.cat(channels, dim=-1)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        # Motion is taken at the full frame rate, before pooling.
        x = pool_time(self._inputs(keypoints, confidence), self.frame_pool).permute(0, 3, 1, 2).contiguous()
        h = self.embed(x) + self.joint_embedding  # [B, W, T, V]
        for block in self.blocks:
            h = block(h)
        return h
