"""The PoseBridge heads: skeleton encoder, cue encoder, skeleton-conditioned bridge, prototype adapter.

Data flow: keypoints -> skeleton tokens (global, 4 body parts, 3 temporal segments); cue features /
heatmaps -> cue tokens (13 cue joints x 3 segments); skeleton tokens query the cue tokens and add
what they find through a gate that starts closed; tokens are projected to the text space, where
they meet class prototypes (name + description, adapted by a shared residual MLP).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from posebridge.cache.schema import skeleton, skeleton_for_joints
from posebridge.pipeline.errors import UserError
from posebridge.stages.train.text import PART_NAMES  # the order of the part texts

NUM_SEGMENTS = 3  # start / middle / end thirds

def skeleton_layout(num_joints: int, name: str = "") -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(body-part joint groups, parents) of the registry's skeleton (cache/schema.py): by name, or by
    joint count where no name is known (checkpoints written before names were stored)."""
    skel = skeleton(name) if name else skeleton_for_joints(num_joints, "the model's data")
    if skel.num_joints != num_joints:
        raise UserError(f"skeleton {name} has {skel.num_joints} joints, the data {num_joints}")
    return skel.parts, skel.parents


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


class Visual(NamedTuple):
    """Visual embeddings in the text space, L2-normalised."""

    global_: torch.Tensor  # [B, D]
    parts: torch.Tensor  # [B, 4, D]
    segments: torch.Tensor  # [B, 3, D]


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
        return F.avg_pool2d(h, (2, 1), ceil_mode=True) + self.temporal(h)


class SkeletonEncoder(nn.Module):
    """Keypoints [B,T,V,3] + confidence [B,T,V] -> global [B,d], parts [B,4,d], segments [B,3,d]."""

    def __init__(self, num_joints: int, dim: int, joint_dim: int = 32, layers: int = 2, motion_bone: bool = True,
                 frame_pool: int = 2, skeleton_name: str = ""):
        super().__init__()
        groups, parents = skeleton_layout(num_joints, skeleton_name)
        self.motion_bone = motion_bone
        self.frame_pool = frame_pool
        self.register_buffer("parents", torch.tensor(parents), persistent=False)
        part_of = torch.zeros(len(groups), num_joints)
        for p, joints in enumerate(groups):
            part_of[p, list(joints)] = 1.0 / len(joints)
        self.register_buffer("part_pool", part_of, persistent=False)  # [4, V] averaging weights
        in_channels = 3 + 1 + (6 if motion_bone else 0)
        self.embed = nn.Conv2d(in_channels, joint_dim, 1)  # the per-joint linear embedding
        self.joint_embedding = nn.Parameter(torch.randn(1, joint_dim, 1, num_joints) * 0.02)
        self.blocks = nn.ModuleList(GraphTemporalBlock(parents, joint_dim) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(joint_dim), nn.Linear(joint_dim, dim))
        self.norm = nn.LayerNorm(dim)

    def _inputs(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        channels = [keypoints, confidence.unsqueeze(-1)]
        if self.motion_bone:
            motion = F.pad(keypoints[:, 1:] - keypoints[:, :-1], (0, 0, 0, 0, 0, 1))
            bone = keypoints - keypoints[:, :, self.parents]
            channels += [motion, bone]
        return torch.cat(channels, dim=-1)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor):
        # Motion is taken at the full frame rate, before pooling.
        x = pool_time(self._inputs(keypoints, confidence), self.frame_pool).permute(0, 3, 1, 2).contiguous()
        h = self.embed(x) + self.joint_embedding  # [B, W, T, V]
        for block in self.blocks:
            h = block(h)
        # Pool first, then widen: the projection runs on 8 tokens instead of T' x V joints.
        global_ = h.mean(dim=(2, 3))
        parts = torch.einsum("pv,bwtv->bpw", self.part_pool, h) / h.shape[2]
        segments = torch.stack([s.mean(dim=(2, 3)) for s in torch.tensor_split(h, NUM_SEGMENTS, dim=2)], dim=1)
        return tuple(self.norm(self.out(t)) for t in (global_, parts, segments))


class CueEncoder(nn.Module):
    """Per-joint cues [B,T,Vc,C] / heatmaps [B,T,Vc,P*P] -> cue tokens [B, 3*Vc, d] (segment x joint)."""

    def __init__(self, cue_joints: int, feature_channels: int, heatmap_size: int, dim: int, cues: str,
                 frame_pool: int = 4):
        super().__init__()
        self.frame_pool = frame_pool
        self.use_features = cues in ("features", "all")
        self.use_heatmaps = cues in ("heatmap", "all")
        # Features arrive on per-clip scales (uint8 quantised in the cache): normalise per joint-frame.
        self.feature_norm = nn.LayerNorm(feature_channels) if self.use_features else None
        in_channels = feature_channels * self.use_features + heatmap_size * self.use_heatmaps
        self.frame_mlp = nn.Linear(in_channels, dim)
        self.segment_mlp = nn.Linear(dim, dim)
        self.joint_embedding = nn.Parameter(torch.randn(cue_joints, dim) * 0.02)
        self.segment_embedding = nn.Parameter(torch.randn(NUM_SEGMENTS, 1, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor | None, heatmaps: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.use_features:
            parts.append(self.feature_norm(features))
        if self.use_heatmaps:
            parts.append(heatmaps)
        h = F.gelu(self.frame_mlp(pool_time(torch.cat(parts, dim=-1), self.frame_pool)))  # [B, T', Vc, d]
        segments = torch.stack([s.mean(dim=1) for s in torch.tensor_split(h, NUM_SEGMENTS, dim=1)], dim=1)
        tokens = self.segment_mlp(segments) + self.joint_embedding + self.segment_embedding  # [B, 3, Vc, d]
        return self.norm(tokens.flatten(1, 2))


class SkeletonCueBridge(nn.Module):
    """Skeleton tokens query cue tokens; the answer enters through a gate the skeleton token sets.

    The gate is tanh(W q + b) with W = b = 0 at the start, so a fresh model is the skeleton-only
    model and cues are let in only where training finds they help for that pose token.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.cue_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gate = nn.Linear(dim, dim)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def gate_values(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gate(tokens))

    def forward(self, tokens: torch.Tensor, cue_tokens: torch.Tensor) -> torch.Tensor:
        cues = self.cue_norm(cue_tokens)
        attended, _ = self.attention(self.query_norm(tokens), cues, cues, need_weights=False)
        return tokens + self.gate_values(tokens) * attended


class PrototypeAdapter(nn.Module):
    """Class prototype = mix of name and description embeddings + a shared residual MLP.

    Shared across classes, so what it learns on the seen classes applies to unseen ones; the last
    layer starts at zero so a fresh adapter returns the plain text prototype.
    """

    def __init__(self, text_dim: int, hidden: int, mix: float):
        super().__init__()
        self.mix = mix
        self.mlp = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, text_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, name: torch.Tensor, description: torch.Tensor) -> torch.Tensor:
        base = F.normalize(self.mix * name + (1.0 - self.mix) * description, dim=-1)
        return F.normalize(base + self.mlp(base), dim=-1)


@dataclass(frozen=True)
class ModelArgs:
    """Everything needed to rebuild a PoseBridge (stored in checkpoints)."""

    num_joints: int
    cue_joints: int
    feature_channels: int
    heatmap_size: int
    text_dim: int
    dim: int = 128
    joint_dim: int = 32
    layers: int = 2
    heads: int = 4
    cues: str = "all"
    motion_bone: bool = True
    proto_mix: float = 0.5
    skeleton_pool: int = 2
    cue_pool: int = 4
    skeleton: str = ""  # registry name; "" = by num_joints
    # "keypoints": the small GCN runs inside the model; "features": precomputed joint x time maps
    # (a SynSE/PURLS feature folder's) come in through stages/train/precomputed.py.
    skeleton_input: str = "keypoints"
    skeleton_channels: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class PoseBridge(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        if args.skeleton_input == "features":
            from posebridge.stages.train.precomputed import PrecomputedSkeleton

            self.skeleton = PrecomputedSkeleton(args.skeleton_channels, args.dim,
                                                skeleton_layout(args.num_joints, args.skeleton)[0], args.num_joints)
        else:
            self.skeleton = SkeletonEncoder(args.num_joints, args.dim, args.joint_dim, args.layers, args.motion_bone,
                                            args.skeleton_pool, args.skeleton)
        self.token_type = nn.Parameter(torch.randn(1 + len(PART_NAMES) + NUM_SEGMENTS, args.dim) * 0.02)
        if args.cues != "none":
            self.cue_encoder = CueEncoder(args.cue_joints, args.feature_channels, args.heatmap_size, args.dim, args.cues,
                                          args.cue_pool)
            self.bridge = SkeletonCueBridge(args.dim, args.heads)
        self.global_proj = nn.Linear(args.dim, args.text_dim)
        self.part_proj = nn.Linear(args.dim, args.text_dim)
        self.segment_proj = nn.Linear(args.dim, args.text_dim)
        self.adapter = PrototypeAdapter(args.text_dim, args.dim, args.proto_mix)
        # CLIP's temperature: logits = exp(s) * cosine, s starts at log(1/0.07), capped at 100.
        self.logit_scale = nn.Parameter(torch.tensor(1.0 / 0.07).log())

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def person_tokens(self, keypoints, confidence, features=None, heatmaps=None) -> torch.Tensor:
        """Tokens [B, 8, d] (global, 4 parts, 3 segments) of one person per row, after the bridge when
        cues are on: keypoints [B, T, V, 3], confidence [B, T, V], features [B, T, Vc, C], heatmaps."""
        global_, parts, segments = self.skeleton(keypoints, confidence)
        tokens = torch.cat([global_.unsqueeze(1), parts, segments], dim=1) + self.token_type
        if self.args.cues != "none":
            tokens = self.bridge(tokens, self.cue_encoder(features, heatmaps))
        return tokens

    def tokens(self, keypoints, confidence, features=None, heatmaps=None) -> torch.Tensor:
        """Clip tokens [B, 8, d] from M persons per clip (keypoints [B, M, T, V, 3], confidence [B, M, T, V],
        features [B, M, T, Vc, C], heatmaps [B, M, T, Vc, P*P]), as the GCN baselines do: the present
        persons are folded into the batch, encoded alone (with their own cues), and their tokens
        averaged. Absent persons (confidence 0 throughout) are never encoded, so they neither cost
        time nor enter batch-norm statistics; a clip without anyone uses its first slot."""
        b, m = keypoints.shape[:2]
        present = confidence.flatten(2).amax(dim=2) > 0  # [B, M]
        present[:, 0] |= ~present.any(dim=1)
        rows = present.flatten().nonzero().squeeze(1)  # indices into the folded B*M axis

        def fold(x):
            return None if x is None else x.flatten(0, 1)[rows]

        tokens = self.person_tokens(fold(keypoints), fold(confidence), fold(features), fold(heatmaps))
        count = present.sum(dim=1).to(tokens.dtype)  # >= 1
        pooled = tokens.new_zeros(b, *tokens.shape[1:]).index_add_(0, rows // m, tokens)
        return pooled / count[:, None, None]

    def forward(self, keypoints, confidence, features=None, heatmaps=None) -> Visual:
        tokens = self.tokens(keypoints, confidence, features, heatmaps)
        n_parts = len(PART_NAMES)
        return Visual(
            F.normalize(self.global_proj(tokens[:, 0]), dim=-1),
            F.normalize(self.part_proj(tokens[:, 1:1 + n_parts]), dim=-1),
            F.normalize(self.segment_proj(tokens[:, 1 + n_parts:]), dim=-1),
        )

    def prototypes(self, name: torch.Tensor, description: torch.Tensor) -> torch.Tensor:
        return self.adapter(name, description)


def masked_part_similarity(emb: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cosine of each part token with the class's matching part text, averaged over the parts the
    class has a text for: emb [B,P,D], text [K,P,D], mask [K,P] -> [B,K] (0 where a class has none)."""
    sims = torch.einsum("bpd,kpd->bkp", emb, F.normalize(text, dim=-1))
    weights = mask.to(sims.dtype)
    return (sims * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)


@dataclass
class ClassTextTensors:
    """The text-bank rows of some classes, on the model's device."""

    name: torch.Tensor  # [K, D]
    description: torch.Tensor  # [K, D]
    parts: torch.Tensor  # [K, 4, D]
    parts_mask: torch.Tensor  # [K, 4]
    temporal: torch.Tensor  # [K, 3, D]
    temporal_mask: torch.Tensor  # [K, 3]

    def rows(self, idx) -> "ClassTextTensors":
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.name.device)
        return ClassTextTensors(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))


def class_scores(visual: Visual, prototypes: torch.Tensor, texts: ClassTextTensors,
                 part_weight: float, temporal_weight: float) -> torch.Tensor:
    """Unscaled class scores [B,K]: global cosine + weighted part and segment similarities."""
    scores = visual.global_ @ prototypes.T
    if part_weight:
        scores = scores + part_weight * masked_part_similarity(visual.parts, texts.parts, texts.parts_mask)
    if temporal_weight:
        scores = scores + temporal_weight * masked_part_similarity(visual.segments, texts.temporal, texts.temporal_mask)
    return scores

