"""Test-time refinement (DynaPURLS), TRANSDUCTIVE: it adapts the class texts to the unlabelled test set.

Read from Alchemist0754/DynaPURLS, model/utils/test_time_utils.py (apply_scale_and_shift,
update_buffer_with_sample, process_batch_adaptation) and test.py (lr 1e-2, buffer 16, confidence
0.1, one step per batch): the refinable classes' prototypes get a learnable elementwise scale
(init 1) and shift (init 0), p' = normalize(scale * p + shift). Test batches arrive one by one, in
the data's row order (fixed) or in a permutation seeded by the run's seed (shuffled: DynaPURLS's
test loader shuffles); each batch's confident pseudo-labelled samples enter a class-balanced memory (per
class, the `memory` most confident seen so far), Adam takes a step on the cross-entropy of the
memory's samples against their pseudo-labels, and the batch is then scored with the adapted
prototypes. With --ttr-refine all every text feature the scores use (global prototype, part and
phase descriptions) adapts, as DynaPURLS refines all 8; with global only the prototypes. Unlike the
reference, the memory keeps sample rows and recomputes their loss with the current parameters
(the reference keeps loss tensors of earlier steps and back-propagates through stale graphs). The rate is constant, or (cosine) follows DynaPURLS's CosineAnnealingLR(T_max =
steps, eta_min = 0.1 lr) stepped after every Adam step. Confidences and the memory's loss use the
scores times the model's scale (scaled), or the raw cosines (cosine: DynaPURLS's
compute_logits_and_predictions applies no temperature). The same inputs and seed give the same scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from posebridge.stages.train.api import TrainConfig, config_field, view_of


@dataclass(frozen=True)
class RefinementSettings:
    """Test-time refinement's share of TrainConfig (its ttr_* fields and the run's seed)."""

    lr: float = config_field("ttr_lr")
    weight_decay: float = config_field("ttr_weight_decay")
    memory: int = config_field("ttr_memory")  # samples kept per class
    min_confidence: float = config_field("ttr_min_conf")  # softmax confidence a sample needs to enter the memory
    steps: int = config_field("ttr_steps")  # Adam steps per incoming batch
    batch: int = config_field("ttr_batch")  # test samples per incoming batch
    order: str = config_field("ttr_order")  # fixed: row order | shuffled: a permutation seeded by `seed`
    schedule: str = config_field("ttr_schedule")  # constant | cosine (CosineAnnealingLR, T_max = steps, eta_min = 0.1 lr)
    logits: str = config_field("ttr_logits")  # scaled: logit_scale * scores | cosine: the scores as they are
    seed: int = config_field("seed")

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "RefinementSettings":
        return view_of(cls, cfg)


class ClassMemory:
    """Per class, the `size` most confident samples so far: their row indices and confidences."""

    def __init__(self, num_classes: int, size: int, device: torch.device):
        self.rows = torch.zeros(num_classes, size, dtype=torch.long, device=device)
        self.confidence = torch.full((num_classes, size), -1.0, device=device)  # -1: empty slot

    def add(self, rows: torch.Tensor, confidence: torch.Tensor, label: torch.Tensor) -> None:
        size = self.confidence.shape[1]
        for k in torch.unique(label).tolist():
            new = label == k
            conf = torch.cat([self.confidence[k], confidence[new]])
            # Stable sort: among equal confidences the earlier sample stays, so the result is deterministic.
            keep = torch.sort(conf, descending=True, stable=True).indices[:size]
            self.rows[k] = torch.cat([self.rows[k], rows[new]])[keep]
            self.confidence[k] = conf[keep]

    def filled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(row indices, pseudo-labels) of the occupied slots."""
        occupied = self.confidence >= 0
        return self.rows[occupied], torch.nonzero(occupied)[:, 0]


ScoreFn = Callable[[torch.Tensor, dict], torch.Tensor]  # (rows [b], texts) -> scores [b, K]


def refine_stream(score_fn: ScoreFn, num_rows: int, texts: dict[str, torch.Tensor], refine: torch.Tensor,
                  logit_scale: float, settings: RefinementSettings = RefinementSettings(),
                  lr_trace: list | None = None) -> torch.Tensor:
    """Scores [N, K] of rows 0..N-1 (in row order), streamed batch by batch in settings.order while
    the text tensors (each [K, ..., D], class first) adapt: every refinable class's texts get a
    learnable scale (init 1) and shift (init 0), t' = normalize(scale * t + shift). score_fn scores
    some rows against (adapted) texts; it must use no labels. lr_trace, if given, receives the rate
    of every Adam step."""
    first = next(iter(texts.values()))
    num_classes, device = first.shape[0], first.device
    texts = {k: v.detach().float() for k, v in texts.items()}
    refine = refine.to(device)
    scale = {k: torch.ones_like(v[refine], requires_grad=True) for k, v in texts.items()}
    shift = {k: torch.zeros_like(v[refine], requires_grad=True) for k, v in texts.items()}
    optimizer = torch.optim.Adam([*scale.values(), *shift.values()], lr=settings.lr,
                                 weight_decay=settings.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.steps, 1),
                                                            eta_min=0.1 * settings.lr)
                 if settings.schedule == "cosine" else None)
    if settings.logits == "cosine":
        logit_scale = 1.0
    order = (torch.randperm(num_rows, generator=torch.Generator().manual_seed(settings.seed))
             if settings.order == "shuffled" else torch.arange(num_rows)).to(device)
    memory = ClassMemory(num_classes, settings.memory, device)

    def adapted() -> dict[str, torch.Tensor]:
        out = {}
        for k, v in texts.items():
            out[k] = v.clone()
            out[k][refine] = F.normalize(scale[k] * v[refine] + shift[k], dim=-1)
        return out

    out = torch.zeros(num_rows, num_classes, device=device)
    with torch.enable_grad():
        for start in range(0, num_rows, settings.batch):
            rows = order[start:start + settings.batch]
            with torch.no_grad():  # the batch enters the memory once, however many steps follow
                conf, pred = (logit_scale * score_fn(rows, adapted())).softmax(dim=-1).max(dim=-1)
            confident = conf > settings.min_confidence
            memory.add(rows[confident], conf[confident], pred[confident])
            mem_rows, mem_label = memory.filled()
            for _ in range(settings.steps if len(mem_label) >= 2 else 0):  # as the reference: no step on < 2
                loss = F.cross_entropy(logit_scale * score_fn(mem_rows, adapted()), mem_label)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if lr_trace is not None:
                    lr_trace.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            with torch.no_grad():
                out[rows] = score_fn(rows, adapted()).float()
    return out


def refine_scores(embedding: torch.Tensor, extra: torch.Tensor, prototypes: torch.Tensor, refine: torch.Tensor,
                  logit_scale: float, settings: RefinementSettings = RefinementSettings(),
                  lr_trace: list | None = None) -> torch.Tensor:
    """The global prototypes only: scores = embedding @ prototypes' + extra (the part / segment
    terms, fixed). embedding [N, D] L2-normalised global embeddings; extra [N, K]; prototypes [K, D];
    refine [K] bool: the columns that may adapt (the unseen classes)."""
    embedding, extra = embedding.detach().float(), extra.detach().float()

    def score_fn(rows: torch.Tensor, texts: dict) -> torch.Tensor:
        return embedding[rows] @ texts["global"].T + extra[rows]

    if len(embedding) == 0:
        return torch.zeros(0, prototypes.shape[0])
    return refine_stream(score_fn, len(embedding), {"global": prototypes}, refine, logit_scale, settings, lr_trace)
