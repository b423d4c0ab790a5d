"""Test-time refinement (DynaPURLS), TRANSDUCTIVE: it adapts the class texts to the unlabelled test set.

Read from Alchemist0754/DynaPURLS, model/utils/test_time_utils.py (apply_scale_and_shift,
update_buffer_with_sample, process_batch_adaptation) and test.py (lr 1e-2, buffer 16, confidence
0.1, one step per batch): the refinable classes' prototypes get a learnable elementwise scale
(init 1) and shift (init 0), p' = normalize(scale * p + shift). Test batches arrive one by one, in
the data's row order (fixed) or in a permutation seeded by the run's seed (shuffled: DynaPURLS's
test loader shuffles); each batch's confident pseudo-labelled samples enter a class-balanced memory (per
class, the `memory` most confident seen so far), Adam takes a step on the cross-entropy of the
memory's samples against their pseudo-labels, and the batch is then scored with the adapted
prototypes. Unlike the reference, the memory keeps embeddings and recomputes their loss with the
current parameters (the reference keeps loss tensors of earlier steps and back-propagates through
stale graphs). The rate is constant, or (cosine) follows DynaPURLS's CosineAnnealingLR(T_max =
steps, eta_min = 0.1 lr) stepped after every Adam step. Confidences and the memory's loss use the
scores times the model's scale (scaled), or the raw cosines (cosine: DynaPURLS's
compute_logits_and_predictions applies no temperature). The same inputs and seed give the same scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RefinementSettings:
    lr: float = 1e-2
    weight_decay: float = 1e-3
    memory: int = 16  # samples kept per class
    min_confidence: float = 0.1  # softmax confidence a sample needs to enter the memory
    steps: int = 1  # Adam steps per incoming batch
    batch: int = 256  # test samples per incoming batch
    order: str = "fixed"  # fixed: row order | shuffled: a permutation seeded by `seed`
    schedule: str = "constant"  # constant | cosine (CosineAnnealingLR, T_max = steps, eta_min = 0.1 lr)
    logits: str = "scaled"  # scaled: logit_scale * scores | cosine: the scores as they are
    seed: int = 0


class ClassMemory:
    """Per class, the `size` most confident samples so far: embedding, fixed score part, confidence."""

    def __init__(self, num_classes: int, size: int, dim: int, device: torch.device):
        self.embedding = torch.zeros(num_classes, size, dim, device=device)
        self.extra = torch.zeros(num_classes, size, num_classes, device=device)
        self.confidence = torch.full((num_classes, size), -1.0, device=device)  # -1: empty slot

    def add(self, embedding: torch.Tensor, extra: torch.Tensor, confidence: torch.Tensor, label: torch.Tensor) -> None:
        size = self.confidence.shape[1]
        for k in torch.unique(label).tolist():
            new = label == k
            conf = torch.cat([self.confidence[k], confidence[new]])
            # Stable sort: among equal confidences the earlier sample stays, so the result is deterministic.
            keep = torch.sort(conf, descending=True, stable=True).indices[:size]
            self.embedding[k] = torch.cat([self.embedding[k], embedding[new]])[keep]
            self.extra[k] = torch.cat([self.extra[k], extra[new]])[keep]
            self.confidence[k] = conf[keep]

    def filled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeddings, fixed score parts, pseudo-labels) of the occupied slots."""
        occupied = self.confidence >= 0
        labels = torch.nonzero(occupied)[:, 0]
        return self.embedding[occupied], self.extra[occupied], labels


def refine_scores(embedding: torch.Tensor, extra: torch.Tensor, prototypes: torch.Tensor, refine: torch.Tensor,
                  logit_scale: float, settings: RefinementSettings = RefinementSettings(),
                  lr_trace: list | None = None) -> torch.Tensor:
    """Scores [N, K] in cosine units (like the unrefined ones) in row order, streamed batch by batch
    in settings.order; lr_trace, if given, receives the rate of every Adam step.

    embedding [N, D] L2-normalised global embeddings; extra [N, K] the part / segment score terms
    (fixed); prototypes [K, D]; refine [K] bool: the columns that may adapt (the unseen classes);
    logit_scale turns scores into the logits whose softmax gives the confidences. Uses no labels.
    """
    embedding, extra = embedding.detach().float(), extra.detach().float()
    prototypes = prototypes.detach().float()
    num_classes = prototypes.shape[0]
    refine = refine.to(prototypes.device)
    scale = torch.ones_like(prototypes[refine], requires_grad=True)
    shift = torch.zeros_like(prototypes[refine], requires_grad=True)
    optimizer = torch.optim.Adam([scale, shift], lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.steps, 1),
                                                            eta_min=0.1 * settings.lr)
                 if settings.schedule == "cosine" else None)
    if settings.logits == "cosine":
        logit_scale = 1.0
    order = (torch.randperm(len(embedding), generator=torch.Generator().manual_seed(settings.seed))
             if settings.order == "shuffled" else torch.arange(len(embedding)))
    embedding, extra = embedding[order.to(embedding.device)], extra[order.to(extra.device)]
    memory = ClassMemory(num_classes, settings.memory, prototypes.shape[1], prototypes.device)

    def adapted() -> torch.Tensor:
        out = prototypes.clone()
        out[refine] = F.normalize(scale * prototypes[refine] + shift, dim=-1)
        return out

    def scores(emb: torch.Tensor, ext: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
        return emb @ protos.T + ext

    out = []
    with torch.enable_grad():
        for start in range(0, len(embedding), settings.batch):
            emb, ext = embedding[start:start + settings.batch], extra[start:start + settings.batch]
            with torch.no_grad():  # the batch enters the memory once, however many steps follow
                conf, pred = (logit_scale * scores(emb, ext, adapted())).softmax(dim=-1).max(dim=-1)
            confident = conf > settings.min_confidence
            memory.add(emb[confident], ext[confident], conf[confident], pred[confident])
            mem_emb, mem_ext, mem_label = memory.filled()
            for _ in range(settings.steps if len(mem_label) >= 2 else 0):  # as the reference: no step on < 2
                loss = F.cross_entropy(logit_scale * scores(mem_emb, mem_ext, adapted()), mem_label)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if lr_trace is not None:
                    lr_trace.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            with torch.no_grad():
                out.append(scores(emb, ext, adapted()))
    if not out:
        return torch.zeros(0, num_classes)
    scored = torch.cat(out)
    return scored[torch.argsort(order).to(scored.device)]  # back to row order
