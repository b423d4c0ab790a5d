"""Skeleton encoders behind one interface (`--skeleton-encoder`, TrainConfig.skeleton_encoder).

Every encoder turns a clip's skeleton into a joint x time feature map [B, W, T', V]; the heads
(heads.SkeletonTokens) pool that map into global / body-part / phase tokens and, with
--adaptive-parts, let the class descriptions attend over it. Persons are folded into the batch
before an encoder runs and averaged (over the persons present) after it (stages/train/persons.py).

- "gcn" (encoders/small_gcn.py): a 2-block learned-adjacency GCN trained with the heads from
  scratch. Fast; the synthetic demo's default.
- "shiftgcn" (encoders/shift_gcn.py, encoders/frozen.py): Shift-GCN in pure PyTorch, pretrained per
  split on the seen classes' training side with cross-entropy, then frozen; its features are
  cached under a fingerprint of (data, split's training rows and classes, encoder settings) and
  reused by every later experiment. The default for data sets the size of the published ones.
- "auto": "gcn" for data sets under AUTO_SHIFTGCN_MIN_CLIPS clips (the synthetic demo's 1080, the
  real sets here), "shiftgcn" for larger ones. On the two small real sets (JHMDB 609 clips, MSR Action3D 557) a
  Shift-GCN pretrained from scratch on the seen classes did not transfer: the small GCN scored
  higher on the seen classes' validation side (bench/real_validate.py, 47.0 vs 40.4 mean ZSL) and
  on the unseen test classes (docs/real-data-benchmark.md); the published sets (NTU 56k-114k,
  PKU-MMD 20k, Kinetics 240k clips) are where the method family pretrains it.

Precomputed features entry point: a PoseBridge built with ModelArgs(skeleton_input="features",
skeleton_channels=W) takes no keypoints; call it as model(None, confidence_or_None, features,
heatmaps, joint_features=x) with x [B, W, T', V] (T' >= 3), e.g. the SynSE / PURLS
`*_feature.npy` arrays ([N, 256, T', V], Shift-GCN before pooling). This is the same layout the
frozen Shift-GCN here produces, so the `--features DIR` route and "shiftgcn" share the heads.
"""
from __future__ import annotations

from posebridge.cache.errors import UserError

SKELETON_ENCODERS = ("auto", "gcn", "shiftgcn")


# Between the real sets measured here (under 1000 clips) and the smallest published set (PKU-MMD,
# about 20k): a round number in the gap, not a tuned one.
AUTO_SHIFTGCN_MIN_CLIPS = 5000


def resolve_encoder(name: str, clips: int | None = None) -> str:
    """'auto' -> the default for the data's size (clips: rows of the whole data set; None: not
    known, counted as large); anything else is checked and returned."""
    if name not in SKELETON_ENCODERS:
        raise UserError(f"--skeleton-encoder '{name}' is unknown; use one of {', '.join(SKELETON_ENCODERS)}")
    if name == "auto":
        small = clips is not None and clips < AUTO_SHIFTGCN_MIN_CLIPS
        return "gcn" if small else "shiftgcn"
    return name
