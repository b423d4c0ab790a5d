"""Alignment losses between visual tokens and class texts (seen classes only during training).

Two forms, chosen by TrainConfig.symmetric_loss:
- default: one-way cross-entropy of each sample against all class prototypes, one shared scale;
  the part and phase terms score a class by its mean part (phase) similarity.
- symmetric (PURLS, azzh1/PURLS model/utils/losses.py + model/purls.py): per representation (global,
  each body part, each phase) skeleton->text plus text->skeleton cross-entropy, each representation
  with its own learnable temperature. Negatives here are classes, not batch instances: skeleton->text
  runs over every candidate class, text->skeleton over the batch for each class present in it, with
  all samples of that class as positives (PURLS pairs instances, so same-class samples count as
  negatives there).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from posebridge.stages.train.config import TrainConfig, config_field, view_of
from posebridge.stages.train.heads import (
    ClassTextTensors, Similarity, Visual, masked_mean, masked_part_similarity,
)


@dataclass(frozen=True)
class LossWeights:
    """The loss's share of TrainConfig."""

    global_: float = config_field("w_global")
    part: float = config_field("w_part")
    temporal: float = config_field("w_temporal")
    # how the 4 part (3 phase) terms of the symmetric loss combine: "mean", or "sum" (PURLS
    # model/purls.py adds all 8 representation losses with weight 1)
    reduce: str = config_field("loss_reduce")
    # share of the global term's target taken from the texts' own class similarities (semantic_targets)
    soft_targets: float = config_field("soft_targets")

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "LossWeights":
        return view_of(cls, cfg)


def info_nce(visual: torch.Tensor, prototypes: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | float,
             soft: float = 0.0) -> torch.Tensor:
    """Cross-entropy of scaled cosine similarities: each sample against all class prototypes.

    visual [B,D], prototypes [K,D], targets [B] in 0..K-1. Prototypes are the negatives, so the
    loss does not depend on which other classes happen to share the batch. soft > 0: the targets
    of semantic_targets instead of one-hot.
    """
    logits = scale * F.normalize(visual, dim=-1) @ F.normalize(prototypes, dim=-1).T
    if not soft:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits, semantic_targets(prototypes, targets, scale, soft))


def semantic_targets(prototypes: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | float,
                     weight: float) -> torch.Tensor:
    """[B, K] target distributions: (1 - weight) x one-hot + weight x the texts' own view of which
    classes are alike, softmax over k of scale x cos(prototype of the label, prototype k), at the
    model's scale and without gradient. A map trained to keep the text space's neighbourhoods,
    rather than to separate the seen classes at any cost, is meant to transfer better to unseen ones."""
    p = F.normalize(prototypes.detach(), dim=-1)
    text = (float(scale) * p[targets] @ p.T).softmax(dim=-1)
    return (1.0 - weight) * F.one_hot(targets, len(prototypes)).to(text.dtype) + weight * text


def masked_ce(scores: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor,
              scale: torch.Tensor | float) -> torch.Tensor:
    """Cross-entropy of scale * scores [B, K] over the samples whose class has a text (classes [K] bool)."""
    usable = classes[targets]
    if not bool(usable.any()):
        return scores.sum() * 0.0  # keeps the graph (and the step) identical whether texts exist or not
    return F.cross_entropy(scale * scores[usable], targets[usable])


def masked_alignment(emb: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                     scale: torch.Tensor | float) -> torch.Tensor:
    """InfoNCE over part (or segment) similarities; samples whose class has no such text are skipped."""
    return masked_ce(masked_part_similarity(emb, text, mask), mask.any(dim=-1), targets, scale)


def symmetric_contrastive(sim: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor,
                          temperature: torch.Tensor | float) -> torch.Tensor:
    """skeleton->text + text->skeleton cross-entropy of one representation's similarities.

    sim [B, K] cosines, targets [B] in 0..K-1, classes [K] bool (those with a text). Only classes
    with a text take part, and only samples of such classes.
      skeleton->text: mean over samples b of -log softmax_k(t * sim[b, :])[y_b]
      text->skeleton: mean over the classes k in the batch of
                      mean over the samples b of class k of -log softmax_b(t * sim[:, k])[b]
    """
    usable = classes[targets]
    if not bool(usable.any()):
        return sim.sum() * 0.0
    column = torch.cumsum(classes.long(), 0) - 1  # class index -> index among the usable classes
    logits = temperature * sim[usable][:, classes]  # [B', K']
    y = column[targets[usable]]
    skeleton_to_text = F.cross_entropy(logits, y)
    log_p = logits.log_softmax(dim=0)  # over the batch, per class
    present = torch.unique(y)
    positives = (y.view(-1, 1) == present.view(1, -1)).to(log_p.dtype)  # [B', classes in batch]
    per_class = -(log_p[:, present] * positives).sum(0) / positives.sum(0)
    return skeleton_to_text + per_class.mean()


def representation_losses(sims: list[Similarity], targets: torch.Tensor, temperatures: list[torch.Tensor],
                          weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """PURLS-style total: w_global * global + w_part * (mean or sum) over parts + w_temporal * (mean
    or sum) over phases of symmetric_contrastive, each representation at its own temperature."""
    terms = {s.name: symmetric_contrastive(s.sim, targets, s.classes, t) for s, t in zip(sims, temperatures)}

    def mean_of(kind: str) -> torch.Tensor:
        stacked = torch.stack([v for k, v in terms.items() if k.startswith(kind + ":")])
        return stacked.sum() if weights.reduce == "sum" else stacked.mean()

    grouped = {"global": terms["global"], "part": mean_of("part"), "temporal": mean_of("phase")}
    total = (weights.global_ * grouped["global"] + weights.part * grouped["part"]
             + weights.temporal * grouped["temporal"])
    return total, {k: float(v.detach()) for k, v in grouped.items()}


def posebridge_loss(visual: Visual, prototypes: torch.Tensor, texts: ClassTextTensors, targets: torch.Tensor,
                    scale: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Global InfoNCE against adapted prototypes + part-aware + temporal-segment alignment."""
    terms = {
        "global": info_nce(visual.global_, prototypes, targets, scale, weights.soft_targets),
        "part": masked_alignment(visual.parts, texts.parts, texts.parts_mask, targets, scale),
        "temporal": masked_alignment(visual.segments, texts.temporal, texts.temporal_mask, targets, scale),
    }
    total = weights.global_ * terms["global"] + weights.part * terms["part"] + weights.temporal * terms["temporal"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def model_loss(model, visual: Visual, prototypes: torch.Tensor, texts: ClassTextTensors, targets: torch.Tensor,
               weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss a PoseBridge trains with, by its flags (adaptive parts, symmetric loss)."""
    args = model.args
    if not args.adaptive_parts and not args.symmetric_loss:
        return posebridge_loss(visual, prototypes, texts, targets, model.scale(), weights)
    sims = model.similarities(visual, prototypes, texts)
    if args.symmetric_loss:
        return representation_losses(sims, targets, [model.temperature(i) for i in range(len(sims))], weights)
    scale = model.scale()  # adaptive parts, one-way cross-entropy at the shared scale
    terms = {"global": masked_ce(sims[0].sim, sims[0].classes, targets, scale),
             "part": masked_ce(masked_mean(sims[1:5]), texts.parts_mask.any(-1), targets, scale),
             "temporal": masked_ce(masked_mean(sims[5:]), texts.temporal_mask.any(-1), targets, scale)}
    total = weights.global_ * terms["global"] + weights.part * terms["part"] + weights.temporal * terms["temporal"]
    return total, {k: float(v.detach()) for k, v in terms.items()}
