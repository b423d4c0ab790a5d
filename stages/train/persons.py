"""The person axis M of the stage-2 tensors (cache schema v2: keypoints [B, M, T, V, 3], ...).

Encoders fold persons into the batch and pool over the persons present, as the GCN baselines do
(Shift-GCN / ST-GCN average their features over M). `with_person_axis` is the ONE place where
schema-1 tensors (one person, no M axis) get M = 1; once every source carries M it is a no-op.
"""
from __future__ import annotations

import torch

# Rank of each tensor WITH the person axis: keypoints [B,M,T,V,3], confidence [B,M,T,V],
# features [B,M,T,Vc,C], heatmaps [B,M,T,Vc,P*P].
_RANK = {"keypoints": 5, "confidence": 4, "features": 5, "heatmaps": 5}


def with_person_axis(keypoints=None, confidence=None, features=None, heatmaps=None):
    """Insert M = 1 after the batch axis into tensors that lack it (schema-1 shapes); None stays None."""
    out = []
    for name, x in (("keypoints", keypoints), ("confidence", confidence), ("features", features),
                    ("heatmaps", heatmaps)):
        out.append(x.unsqueeze(1) if x is not None and x.dim() == _RANK[name] - 1 else x)
    return tuple(out)


def present_persons(confidence: torch.Tensor | None, batch: int, persons: int, device=None) -> torch.Tensor:
    """[B, M] bool: a person slot is present when any of its joints has confidence > 0 in any frame
    (an absent slot is all zeros, per the contract); a clip without anyone uses its first slot.
    Without confidences every slot counts."""
    if confidence is None:
        return torch.ones(batch, persons, dtype=torch.bool, device=device)
    present = confidence.flatten(2).gt(0).any(dim=-1)
    present[:, 0] |= ~present.any(dim=1)
    return present


def fold(x: torch.Tensor) -> torch.Tensor:
    """[B, M, ...] -> [B*M, ...]."""
    return x.flatten(0, 1)


def pool_rows(x: torch.Tensor, clip_of: torch.Tensor, batch: int) -> torch.Tensor:
    """Mean per clip of the rows of present persons: x [R, ...], clip_of [R] (clip of each row) -> [B, ...]."""
    total = x.new_zeros(batch, *x.shape[1:]).index_add_(0, clip_of, x)
    count = torch.bincount(clip_of, minlength=batch).clamp(min=1).to(x.dtype)
    return total / count.view(-1, *([1] * (x.dim() - 1)))
