"""Alignment losses between visual tokens and class texts (seen classes only during training)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from posebridge.stages.train.heads import ClassTextTensors, Visual, masked_part_similarity


@dataclass(frozen=True)
class LossWeights:
    global_: float = 1.0
    part: float = 0.5
    temporal: float = 0.5


def info_nce(visual: torch.Tensor, prototypes: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Cross-entropy of scaled cosine similarities: each sample against all class prototypes.

    visual [B,D], prototypes [K,D], targets [B] in 0..K-1. Prototypes are the negatives, so the
    loss does not depend on which other classes happen to share the batch.
    """
    logits = scale * F.normalize(visual, dim=-1) @ F.normalize(prototypes, dim=-1).T
    return F.cross_entropy(logits, targets)


def masked_alignment(emb: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                     scale: torch.Tensor | float) -> torch.Tensor:
    """InfoNCE over part (or segment) similarities; samples whose class has no such text are skipped."""
    usable = mask[targets].any(dim=-1)
    if not bool(usable.any()):
        return emb.sum() * 0.0  # keeps the graph (and the step) identical whether texts exist or not
    logits = scale * masked_part_similarity(emb[usable], text, mask)
    return F.cross_entropy(logits, targets[usable])


def posebridge_loss(visual: Visual, prototypes: torch.Tensor, texts: ClassTextTensors, targets: torch.Tensor,
                    scale: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Global InfoNCE against adapted prototypes + part-aware + temporal-segment alignment."""
    terms = {
        "global": info_nce(visual.global_, prototypes, targets, scale),
        "part": masked_alignment(visual.parts, texts.parts, texts.parts_mask, targets, scale),
        "temporal": masked_alignment(visual.segments, texts.temporal, texts.temporal_mask, targets, scale),
    }
    total = weights.global_ * terms["global"] + weights.part * terms["part"] + weights.temporal * terms["temporal"]
    return total, {k: float(v.detach()) for k, v in terms.items()}
