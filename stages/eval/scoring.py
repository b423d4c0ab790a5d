"""Scoring: class scores of visual embeddings against the class prototypes of some classes.

Scores are in COSINE units (global cosine + weighted part / segment similarities), not multiplied
by the model's learned logit scale: rankings are the same, and the GZSL calibration gamma, chosen
on an auxiliary model's scores, means the same on the main model's (their learned scales differ).
"""
from __future__ import annotations

import numpy as np
import torch

from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.heads import ClassTextTensors, PoseBridge, Visual, class_scores, refine_prototypes


def class_columns(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Dataset class ids -> column indices into scores over `classes`."""
    lookup = {int(c): i for i, c in enumerate(classes)}
    return np.array([lookup[int(y)] for y in labels], dtype=np.int64)


@torch.no_grad()
def score(model: PoseBridge, visual: Visual, texts: ClassTextTensors, classes: np.ndarray, cfg: TrainConfig,
          refine: np.ndarray | None = None) -> np.ndarray:
    """Scores [N, len(classes)] in cosine units; with `refine` (bool per class) and cfg.ttr, refined first."""
    rows = texts.rows(classes)
    protos = model.prototypes(rows.name, rows.description)
    visual = Visual(*(t.to(protos.device) for t in visual))

    def scores(p):
        return class_scores(visual, p, rows, cfg.score_part, cfg.score_temporal)

    out = scores(protos)
    if cfg.ttr and refine is not None and len(visual.global_):
        protos = refine_prototypes(visual.global_, protos, model.scale() * out,
                                   torch.as_tensor(refine, device=protos.device),
                                   cfg.ttr_per_class, cfg.ttr_min_conf, cfg.ttr_step)
        out = scores(protos)
    return out.float().cpu().numpy()
