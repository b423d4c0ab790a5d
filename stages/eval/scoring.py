"""Scoring: class scores of visual embeddings against the class prototypes of some classes.

Scores are in COSINE units (global cosine + weighted part / segment similarities), not multiplied
by the model's learned logit scale: rankings are the same, and the GZSL calibration gamma, chosen
on an auxiliary model's scores, means the same on the main model's (their scales differ).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from posebridge.stages.eval.hubness import class_hubness, corrected
from posebridge.stages.eval.refinement import RefinementSettings, refine_scores, refine_stream
from posebridge.stages.train.api import ClassTextTensors, PoseBridge, TrainConfig, Visual


def class_columns(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Dataset class ids -> column indices into scores over `classes`."""
    lookup = {int(c): i for i, c in enumerate(classes)}
    return np.array([lookup[int(y)] for y in labels], dtype=np.int64)


@torch.no_grad()
def score(model: PoseBridge, visual: Visual, texts: ClassTextTensors, classes: np.ndarray, cfg: TrainConfig,
          refine: np.ndarray | None = None, reference: Visual | None = None) -> np.ndarray:
    """Scores [N, len(classes)] in cosine units. With cfg.ttr and `refine` (bool per class: the
    columns that may adapt), the rows are scored as a stream with test-time refinement (transductive).
    With `reference` (training clips' embeddings: stages/eval/hubness.py), each class's score is
    lowered by half its prototype's CSLS hubness over those clips."""
    rows = texts.rows(classes)
    protos = model.prototypes(rows.name, rows.description)
    visual = visual.map(lambda t: t.to(protos.device))
    scores = model.class_scores(visual, protos, rows, cfg.score_part, cfg.score_temporal)
    if cfg.ttr and refine is not None and refine.any() and len(visual.global_):
        columns = torch.as_tensor(refine, device=protos.device)
        if cfg.ttr_refine == "all":  # every text the scores read adapts: prototypes, part and phase texts
            scores = _refine_all(model, visual, protos, rows, columns, cfg)
        else:  # the part / segment terms stay fixed; only the global prototypes of refinable classes adapt
            extra = model.class_scores(visual._replace(global_=torch.zeros_like(visual.global_)), protos, rows,
                                       cfg.score_part, cfg.score_temporal)
            scores = refine_scores(visual.global_, extra, protos, columns, float(model.scale()),
                                   RefinementSettings.from_config(cfg))
    scores = scores.float().cpu().numpy()
    if reference is not None:
        reference = reference.map(lambda t: t.to(protos.device))
        reference_scores = model.class_scores(reference, protos, rows, cfg.score_part, cfg.score_temporal)
        scores = corrected(scores, class_hubness(reference_scores.float().cpu().numpy()))
    return scores


def _refine_all(model: PoseBridge, visual: Visual, protos: torch.Tensor, rows: ClassTextTensors,
                columns: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Refinement of every text feature (DynaPURLS refines all 8 per class): the model's own class
    scores, recomputed from the adapted texts; its weights stay frozen."""
    frozen = {name: p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(False)
    visual = visual.map(lambda t: t.detach().float())

    def score_fn(idx: torch.Tensor, texts: dict) -> torch.Tensor:
        part = visual.map(lambda t: t[idx])
        adapted = dataclasses.replace(rows, parts=texts["parts"], temporal=texts["temporal"])
        return model.class_scores(part, texts["global"], adapted, cfg.score_part, cfg.score_temporal)

    try:
        return refine_stream(score_fn, len(visual.global_), {"global": protos, "parts": rows.parts,
                                                             "temporal": rows.temporal},
                             columns, float(model.scale()), RefinementSettings.from_config(cfg))
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(frozen[name])
