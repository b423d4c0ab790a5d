"""Hubness correction of zero-shot scores, from the training clips only (not transductive).

A head trained on the seen classes maps every clip near the seen classes' region; an unseen class
whose prototype lies there becomes a "hub" that takes most unseen clips (measured on NW-UCLA 5/5:
"donning" took over 90% of the clips; docs/published-benchmark.md). CSLS (Lample et al., 2018, "Word
translation without parallel data") lowers each class's score by its prototype's mean similarity
to its k nearest reference embeddings. The reference here is the run's TRAINING clips (seen
classes), never the test clips, so a clip's ranking does not depend on the other test clips.

Per row, CSLS(x, c) = 2 cos(x, c) - r(x) - r(c); r(x) is the same for every class of a row, so the
ranking is that of cos(x, c) - r(c) / 2, which is what `corrected` returns (in cosine units, as
stages/eval/scoring.py's scores).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posebridge.cache.atomic import atomic_path
from posebridge.cache.errors import UserError
from posebridge.stages.train.api import Visual, load_checkpoint

CSLS_K = 10  # nearest reference clips per prototype: the CSLS paper's k
REFERENCE_CLIPS = 4096  # at most this many training clips (seeded draw): r(c) costs O(N K), the file stays small
REFERENCE_FILE = "hubness_reference.pt"  # the reference embeddings in a run folder, for `posebridge predict`


def reference_rows(train_idx: np.ndarray, seed: int, limit: int = REFERENCE_CLIPS) -> np.ndarray:
    """The training rows whose embeddings are the reference: all of them up to `limit`, else a
    seeded draw of `limit` (sorted, so the same run always gets the same rows)."""
    train_idx = np.asarray(train_idx)
    if len(train_idx) <= limit:
        return train_idx
    return np.sort(np.random.default_rng(seed).choice(train_idx, limit, replace=False))


def class_hubness(reference_scores: np.ndarray, k: int = CSLS_K) -> np.ndarray:
    """r(c) [K]: per class column, the mean of its k highest scores over the reference rows [N, K]."""
    if reference_scores.shape[0] == 0:
        raise ValueError("hubness needs at least one reference clip")
    k = min(k, reference_scores.shape[0])
    return np.sort(reference_scores, axis=0)[-k:].mean(axis=0)


def corrected(scores: np.ndarray, hubness: np.ndarray) -> np.ndarray:
    """Scores [N, K] ranked as CSLS ranks them: each class's score minus half its hubness."""
    return scores - 0.5 * hubness[None, :]


def save_reference(run_dir: Path, reference: Visual) -> Path:
    """The reference embeddings as float16 in the run folder (written atomically; half the bytes), so
    that `posebridge predict` ranks new clips with the correction the run's metrics used, up to that
    rounding of the reference (metrics and `eval` use the float32 embeddings)."""
    path = Path(run_dir) / REFERENCE_FILE
    with atomic_path(path) as tmp:  # a crash mid-write never leaves a torn file
        torch.save({"visual": [None if t is None else t.detach().to("cpu", torch.float16) for t in reference]}, tmp)
    return path


def load_reference(run_dir: Path, device: torch.device) -> Visual:
    path = Path(run_dir) / REFERENCE_FILE
    if not path.exists():
        raise UserError(f"{run_dir} scores with --hubness csls but has no {REFERENCE_FILE}; evaluate it again "
                        f"(posebridge eval {run_dir} with the data it was trained on) to write it again")
    tensors = load_checkpoint(path)["visual"]
    return Visual(*(None if t is None else t.to(device, torch.float32) for t in tensors))
