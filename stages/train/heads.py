"""The PoseBridge heads: skeleton tokens, cue encoder, skeleton-conditioned bridge, prototype adapter,
PURLS-style adaptive partitioning.

Data flow, per person (persons folded into the batch, stages/train/persons.py): a skeleton encoder
(stages/train/encoders/) gives a joint x time map, averaged over the persons present -> skeleton
tokens (global, 4 body parts, 3 temporal segments); cue features / heatmaps -> cue tokens (16
temporal steps x (cue joints + body-part pools) per person); skeleton tokens query the cue tokens
of the persons present and add what they find through a gate that starts closed; tokens are
projected to the text space, where they meet class prototypes (name + description, adapted by a
shared residual MLP). With adaptive parts, each class's body-part / phase description queries the
joint x time tokens itself instead of the fixed joint groups and thirds.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from posebridge.cache.schema import skeleton, skeleton_for_joints
from posebridge.cache.errors import UserError
from posebridge.cache.layouts import Skeleton, check_joint_count, layout_from_dict
from posebridge.stages.train.config import TrainConfig, config_field, view_of
from posebridge.stages.train.encoders.small_gcn import SmallGCN
from posebridge.stages.train.persons import fold, pool_rows, present_persons, with_person_axis
from posebridge.stages.train.text import PART_NAMES  # the order of the part texts

NUM_SEGMENTS = 3  # start / middle / end thirds
LOG_SCALE_CAP = math.log(100.0)  # logit scales are capped at 100, as CLIP's

def model_skeleton(num_joints: int, name: str = "", layout: dict | None = None) -> Skeleton:
    """The model's skeleton: its layout dict (ModelArgs.skeleton_layout, so a layout read from a file
    needs no file later), else the registry's by name, else by joint count (checkpoints written
    before names were stored)."""
    if layout is not None:
        skel = layout_from_dict(layout, f"the model's layout {layout.get('name', '?')!r}")
    else:
        skel = skeleton(name) if name else skeleton_for_joints(num_joints, "the model's data")
    check_joint_count(skel, num_joints, "the model's data")
    return skel


def skeleton_layout(num_joints: int, name: str = "",
                    layout: dict | None = None) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(body-part joint groups, parents) of the model's skeleton (model_skeleton)."""
    skel = model_skeleton(num_joints, name, layout)
    return skel.parts, skel.parents


def cue_joint_parts(num_joints: int, cue_joint_ids: tuple[int, ...], name: str = "",
                    layout: dict | None = None) -> tuple[int, ...]:
    """The body part (index into PART_NAMES) of each cue joint, from the skeleton's part table."""
    skel = model_skeleton(num_joints, name, layout)
    part_of = {j: p for p, joints in enumerate(skel.parts) for j in joints}
    lost = [skel.joint_names[j] for j in cue_joint_ids if j not in part_of]
    if lost:
        raise UserError(f"cue joint {lost[0]} is in no body part of {skel.where()}; add it to one of its parts")
    return tuple(part_of[j] for j in cue_joint_ids)


class Visual(NamedTuple):
    """Visual embeddings in the text space, L2-normalised (joint_tokens are neither)."""

    global_: torch.Tensor  # [B, D]
    parts: torch.Tensor  # [B, 4, D]
    segments: torch.Tensor  # [B, 3, D]
    # [B, L, d] joint x time tokens the class descriptions attend over (--adaptive-parts), else None
    joint_tokens: torch.Tensor | None = None

    def map(self, fn) -> "Visual":
        """fn applied to every tensor (rows, device, dtype), None kept."""
        return Visual(*(None if t is None else fn(t) for t in self))


ADAPTIVE_STEPS = 3  # time steps of the joint x time tokens: PURLS attends over 3 x V Shift-GCN cells


class SkeletonTokens(nn.Module):
    """A joint x time feature map [B, W, T', V] (any encoder's, or precomputed) -> global [B,d],
    parts [B,4,d] (body parts of the skeleton's table), segments [B,3,d] (start / middle / end
    thirds) and, when asked, joint x time tokens [B, ADAPTIVE_STEPS * V, d] (else None)."""

    def __init__(self, channels: int, dim: int, num_joints: int, joint_tokens: bool = False, skeleton_name: str = "",
                 layout: dict | None = None):
        super().__init__()
        groups, _ = skeleton_layout(num_joints, skeleton_name, layout)
        part_of = torch.zeros(len(groups), num_joints)
        for p, joints in enumerate(groups):
            part_of[p, list(joints)] = 1.0 / len(joints)
        self.register_buffer("part_pool", part_of, persistent=False)  # [4, V] averaging weights
        self.with_joint_tokens = joint_tokens
        self.out = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor):
        if h.shape[2] < NUM_SEGMENTS:
            raise UserError(f"skeleton features have {h.shape[2]} time steps; the heads need at least "
                            f"{NUM_SEGMENTS}, one per phase")
        # Pool first, then widen: the projection runs on 8 tokens instead of T' x V joints.
        global_ = h.mean(dim=(2, 3))
        parts = torch.einsum("pv,bwtv->bpw", self.part_pool, h) / h.shape[2]
        segments = torch.stack([s.mean(dim=(2, 3)) for s in torch.tensor_split(h, NUM_SEGMENTS, dim=2)], dim=1)
        joint_tokens = None
        if self.with_joint_tokens:
            cells = F.adaptive_avg_pool2d(h, (ADAPTIVE_STEPS, h.shape[3])).flatten(2).transpose(1, 2)
            joint_tokens = self.norm(self.out(cells))
        return (*(self.norm(self.out(t)) for t in (global_, parts, segments)), joint_tokens)


class SkeletonEncoder(nn.Module):
    """The small GCN with its tokens, for one person: keypoints [B,T,V,3] + confidence [B,T,V] ->
    global [B,d], parts [B,4,d], segments [B,3,d]."""

    def __init__(self, num_joints: int, dim: int, joint_dim: int = 32, layers: int = 2, motion_bone: bool = True,
                 frame_pool: int = 2, skeleton_name: str = "", layout: dict | None = None):
        super().__init__()
        _, parents = skeleton_layout(num_joints, skeleton_name, layout)
        self.backbone = SmallGCN(parents, joint_dim, layers, motion_bone, frame_pool)
        self.tokens = SkeletonTokens(joint_dim, dim, num_joints, skeleton_name=skeleton_name, layout=layout)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor):
        return self.tokens(self.backbone(keypoints, confidence))[:3]


def pool_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T, ...] -> [B, steps, ...]: average over `steps` near-equal windows along time."""
    b, t = x.shape[:2]
    pooled = F.adaptive_avg_pool1d(x.reshape(b, t, -1).transpose(1, 2), steps)
    return pooled.transpose(1, 2).reshape(b, steps, *x.shape[2:])


class CueEncoder(nn.Module):
    """One person's cues -> cue tokens [B, steps * (Vc + parts), d].

    Per-joint cues [B,T,Vc,C] / heatmaps [B,T,Vc,P*P] are averaged into `steps` temporal windows
    (16 by default, as the authors' 16 cue tokens per video), mixed per joint-step by an MLP, and
    kept both per cue joint and body-aware pooled (the mean over the cue joints of each body part
    of the skeleton's part table): the bridge can attend to one wrist at one moment or to "the
    hands" over a phase.
    """

    def __init__(self, cue_joints: int, feature_channels: int, heatmap_size: int, dim: int, cues: str,
                 steps: int = 16, joint_parts: tuple[int, ...] = ()):
        super().__init__()
        self.steps = steps
        self.use_features = cues in ("features", "all")
        self.use_heatmaps = cues in ("heatmap", "all")
        # Features arrive on per-clip scales (uint8 quantised in the cache): normalise per joint-frame.
        self.feature_norm = nn.LayerNorm(feature_channels) if self.use_features else None
        in_channels = feature_channels * self.use_features + heatmap_size * self.use_heatmaps
        self.frame_mlp = nn.Linear(in_channels, dim)
        self.token_mlp = nn.Linear(dim, dim)
        parts = sorted(set(joint_parts))
        pool = torch.zeros(len(parts), cue_joints)
        for row, part in enumerate(parts):
            members = [j for j, p in enumerate(joint_parts) if p == part]
            pool[row, members] = 1.0 / len(members)
        self.register_buffer("part_pool", pool, persistent=False)  # [P', Vc]
        self.joint_embedding = nn.Parameter(torch.randn(cue_joints + len(parts), dim) * 0.02)
        self.step_embedding = nn.Parameter(torch.randn(steps, 1, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def tokens_per_step(self) -> int:
        return self.joint_embedding.shape[0]

    def forward(self, features: torch.Tensor | None, heatmaps: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.use_features:
            parts.append(self.feature_norm(features))
        if self.use_heatmaps:
            parts.append(heatmaps)
        h = F.gelu(self.frame_mlp(pool_steps(torch.cat(parts, dim=-1), self.steps)))  # [B, S, Vc, d]
        pooled = torch.einsum("pv,bsvd->bspd", self.part_pool, h)  # body-aware: [B, S, P', d]
        tokens = self.token_mlp(torch.cat([h, pooled], dim=2)) + self.joint_embedding + self.step_embedding
        return self.norm(tokens.flatten(1, 2))


class CueTokenProjection(nn.Module):
    """Precomputed cue tokens [B, S, D] (a feature folder's `*_cue.npy`, e.g. the authors' 16 x 512
    per video) -> cue tokens [B, S, d]: the same role as CueEncoder's output, one token per step."""

    def __init__(self, token_dim: int, dim: int, steps: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, dim))
        self.step_embedding = nn.Parameter(torch.randn(steps, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != self.step_embedding.shape[0]:
            raise UserError(f"cue tokens have {tokens.shape[1]} steps; this model was built for "
                            f"{self.step_embedding.shape[0]}")
        return self.norm(self.proj(tokens.float()) + self.step_embedding)


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

    def forward(self, tokens: torch.Tensor, cue_tokens: torch.Tensor,
                ignore: torch.Tensor | None = None) -> torch.Tensor:
        """ignore [B, L] True for cue tokens of absent persons."""
        cues = self.cue_norm(cue_tokens)
        attended, _ = self.attention(self.query_norm(tokens), cues, cues, key_padding_mask=ignore, need_weights=False)
        return tokens + self.gate_values(tokens) * attended


class AdaptivePartition(nn.Module):
    """PURLS's adaptive partitioning (Zhu et al., CVPR 2024; azzh1/PURLS model/utils/attention.py):
    a description embedding t queries the joint x time tokens x_1..x_L of a sample,

        w = softmax_l( mean_h <Wq_h t, Wk_h x_l> / sqrt(k) ),   pooled = sum_l w_l x_l,

    values are the tokens themselves (no value projection) and the logits are averaged over heads
    before the softmax, as there. queries [K, D] (one description per class) -> [B, K, d]: every
    class's own description pools its own part of every sample, so scoring needs no label."""

    def __init__(self, token_dim: int, text_dim: int, key_dim: int = 150, heads: int = 2):
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.query = nn.Linear(text_dim, heads * key_dim, bias=False)
        self.key = nn.Linear(token_dim, heads * key_dim, bias=False)

    def keys(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L, d] -> [B, L, H, k]: the same for every query, so one forward computes them once."""
        return self.key(tokens).view(*tokens.shape[:2], self.heads, self.key_dim)

    def weights(self, tokens: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L, d], queries [K, D] -> attention weights [B, K, L]."""
        q = self.query(queries).view(-1, self.heads, self.key_dim)  # [K, H, k]
        k = self.keys(tokens) if keys is None else keys  # [B, L, H, k]
        logits = torch.einsum("khc,blhc->bkl", q, k) / (self.heads * self.key_dim ** 0.5)  # mean over heads
        return logits.softmax(dim=-1)

    def forward(self, tokens: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        return self.weights(tokens, queries, keys) @ tokens


class MaskDropout(nn.Module):
    """nn.Dropout's function (zero each element with probability p, scale the rest by 1/(1-p)),
    with the mask drawn by torch.rand: on CPU, torch's dropout kernel is 1.5-2.8x slower (torch 2.13,
    on the shared MLP's [B*K, 1024] activations) and took 28% of a preset's step; a preset partition
    runs 1.19x faster with this (docs/real-data-benchmark.md). Same distribution, another random stream."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SharedMLP(nn.Module):
    """PURLS's skeleton->text projection (azzh1/PURLS model/purls.py skel_encoder: BN, dropout .5,
    Linear to 1024, SiLU, BN, dropout .5, Linear, Tanh), one module for all 8 representations.
    PURLS applies it to the 8 attended outputs concatenated; here the same weights map each
    representation on its own, because label-free adaptive parts pool one part per candidate class
    (the concatenation would have to run once per class; see docs/method-presets.md)."""

    def __init__(self, dim: int, text_dim: int, hidden: int = 1024):
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(dim), MaskDropout(0.5), nn.Linear(dim, hidden), nn.SiLU(),
                                 nn.BatchNorm1d(hidden), MaskDropout(0.5), nn.Linear(hidden, text_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def temperature_value(param: torch.Tensor, kind: str) -> torch.Tensor:
    """The multiplier of the cosines: exp(param) capped at 100 (CLIP), or param itself (PURLS)."""
    if kind == "direct":
        return param
    return param.exp().clamp(max=100.0)


class PrototypeAdapter(nn.Module):
    """Class prototype = mix of name and description embeddings + a shared residual MLP.

    Shared across classes, so what it learns on the seen classes applies to unseen ones; the last
    layer starts at zero so a fresh adapter returns the plain text prototype.
    """

    def __init__(self, text_dim: int, hidden: int, mix: float, adapt: bool = True):
        super().__init__()
        self.mix, self.adapt = mix, adapt  # adapt False: the text prototype as encoded (PURLS: CLIP frozen)
        self.mlp = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, text_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, name: torch.Tensor, description: torch.Tensor) -> torch.Tensor:
        base = F.normalize(self.mix * name + (1.0 - self.mix) * description, dim=-1)
        if not self.adapt:
            return base
        return F.normalize(base + self.mlp(base), dim=-1)


@dataclass(frozen=True)
class ModelArgs:
    """Everything needed to rebuild a PoseBridge (stored in checkpoints)."""

    num_joints: int
    cue_joints: int
    feature_channels: int
    heatmap_size: int
    text_dim: int
    # The fields that mirror TrainConfig take its defaults (config_field); from_config copies a run's.
    dim: int = config_field("dim")
    joint_dim: int = config_field("joint_dim")
    layers: int = config_field("layers")
    heads: int = config_field("heads")
    cues: str = config_field("cues")
    motion_bone: bool = config_field("motion_bone")
    proto_mix: float = config_field("proto_mix")
    skeleton_pool: int = config_field("skeleton_pool")
    cue_steps: int = config_field("cue_steps")  # temporal cue tokens per person (a token folder: its own)
    cue_joint_ids: tuple[int, ...] = ()  # joints (into V) the cues were sampled at: their body parts
    # "keypoints": the small GCN runs inside the model; "features": precomputed joint x time maps
    # [B, skeleton_channels, T', V] come in (a frozen Shift-GCN's, or a SynSE/PURLS feature folder's).
    skeleton_input: str = "keypoints"
    skeleton_channels: int = 0
    # "joints": per-joint cue arrays (features / heatmaps) go through CueEncoder; "tokens":
    # precomputed cue tokens [B, cue_steps, cue_token_dim] come in the features slot (a feature folder's)
    cue_input: str = "joints"
    cue_token_dim: int = 0
    adaptive_parts: bool = config_field("adaptive_parts")  # PURLS adaptive partitioning instead of fixed joint groups / thirds
    symmetric_loss: bool = config_field("symmetric_loss")  # learnable temperature per representation (losses.symmetric_contrastive)
    skeleton: str = ""  # registry name; "" = by num_joints
    # The layout's Skeleton.to_dict() (cache/layouts.py), so a layout read from a file rebuilds
    # without it; None (older checkpoints) = the registry's `skeleton`.
    skeleton_layout: dict | None = None
    # "exp": logits = exp(s) * cos (CLIP), capped at 100; "direct": logits = s * cos (PURLS losses.py
    # contrastive_loss multiplies by tmps, initialised to log(1/0.07) = 2.66, never exponentiated)
    temperature: str = config_field("temperature")
    # "linear": one Linear per kind (global / part / phase); "shared_mlp": one MLP for every representation
    projection: str = config_field("projection")
    text_adapter: bool = config_field("text_adapter")  # the shared residual MLP on the prototypes (False: texts as encoded)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, cfg: TrainConfig, **data_decided) -> "ModelArgs":
        """The run's args: the fields TrainConfig holds from cfg, the ones the data decides given."""
        return view_of(cls, cfg, **data_decided)

    @classmethod
    def from_dict(cls, saved: dict) -> "ModelArgs":
        """The args of a checkpoint. Fields this version no longer has (cue_pool, from before the
        16-step cue tokens) are dropped; if they shaped a weight, load_state_dict then says which.
        Fields it lacks take what the model did before they existed (BEFORE_FIELD), not today's
        TrainConfig default, which may have moved since."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**BEFORE_FIELD, **{k: v for k, v in saved.items() if k in known}})


# What a checkpoint written before one of these switches existed was built with (its model ran
# this way), pinned here because TrainConfig's default for a switch may change later.
# (The other config fields are in every checkpoint's model_args.)
BEFORE_FIELD = {"cue_steps": 16, "adaptive_parts": False, "symmetric_loss": False, "temperature": "exp",
                "projection": "linear", "text_adapter": True}


REPRESENTATIONS = ("global",) + tuple(f"part:{p}" for p in PART_NAMES) + tuple(
    f"phase:{p}" for p in ("start", "middle", "end"))


class Similarity(NamedTuple):
    """Cosine similarities of one representation (global, a body part or a phase) with the classes."""

    name: str  # one of REPRESENTATIONS
    sim: torch.Tensor  # [B, K]
    classes: torch.Tensor  # [K] bool: the classes that have a text for this representation


class PoseBridge(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        if args.skeleton_input == "keypoints":
            _, parents = skeleton_layout(args.num_joints, args.skeleton, args.skeleton_layout)
            self.backbone = SmallGCN(parents, args.joint_dim, args.layers, args.motion_bone, args.skeleton_pool)
            channels = args.joint_dim
        elif args.skeleton_input == "features":
            self.backbone = None
            channels = args.skeleton_channels
        else:
            raise UserError(f"skeleton_input '{args.skeleton_input}' is unknown; use keypoints or features")
        self.skeleton = SkeletonTokens(channels, args.dim, args.num_joints, joint_tokens=args.adaptive_parts,
                                       skeleton_name=args.skeleton, layout=args.skeleton_layout)
        self.token_type = nn.Parameter(torch.randn(1 + len(PART_NAMES) + NUM_SEGMENTS, args.dim) * 0.02)
        if args.cues != "none":
            joint_parts = (cue_joint_parts(args.num_joints, tuple(args.cue_joint_ids), args.skeleton,
                                           args.skeleton_layout)
                           if args.cue_joint_ids else ())
            if args.cue_input == "tokens":
                self.cue_encoder = CueTokenProjection(args.cue_token_dim, args.dim, args.cue_steps)
            elif args.cue_input == "joints":
                self.cue_encoder = CueEncoder(args.cue_joints, args.feature_channels, args.heatmap_size, args.dim,
                                              args.cues, args.cue_steps, joint_parts)
            else:
                raise UserError(f"cue_input '{args.cue_input}' is unknown; use joints or tokens")
            self.bridge = SkeletonCueBridge(args.dim, args.heads)
        if args.adaptive_parts:
            self.partition = AdaptivePartition(args.dim, args.text_dim)
        if args.projection == "shared_mlp":  # one module under three names: the parameters are shared
            self.global_proj = self.part_proj = self.segment_proj = SharedMLP(args.dim, args.text_dim)
        else:
            self.global_proj = nn.Linear(args.dim, args.text_dim)
            self.part_proj = nn.Linear(args.dim, args.text_dim)
            self.segment_proj = nn.Linear(args.dim, args.text_dim)
        self.adapter = PrototypeAdapter(args.text_dim, args.dim, args.proto_mix, args.text_adapter)
        # s starts at log(1/0.07) either way; exp: logits = exp(s) * cos (CLIP), direct: s * cos (PURLS)
        self.logit_scale = nn.Parameter(torch.tensor(1.0 / 0.07).log())
        if args.symmetric_loss:  # PURLS: one learnable temperature per representation, same start
            self.temperatures = nn.Parameter(torch.full((len(REPRESENTATIONS),), 1.0 / 0.07).log())

    @torch.no_grad()
    def clamp_temperatures(self) -> None:
        """Keep every log-temperature at or below ln 100 (as CLIP does after each step): past the cap
        exp().clamp() passes no gradient, and a parameter pushed beyond it would stay stuck there.
        A direct temperature (PURLS) is left as it is: the reference neither exponentiates nor caps it."""
        if self.args.temperature == "direct":
            return
        self.logit_scale.clamp_(max=LOG_SCALE_CAP)
        if self.args.symmetric_loss:
            self.temperatures.clamp_(max=LOG_SCALE_CAP)

    def scale(self) -> torch.Tensor:
        """The logit scale of the class scores (the global representation's temperature)."""
        s = self.temperatures[0] if self.args.symmetric_loss else self.logit_scale
        return temperature_value(s, self.args.temperature)

    def temperature(self, index: int) -> torch.Tensor:
        return temperature_value(self.temperatures[index], self.args.temperature)

    def tokens(self, keypoints=None, confidence=None, features=None, heatmaps=None, joint_features=None):
        """Skeleton tokens [B, 8, d] (global, 4 parts, 3 segments), after the bridge when cues are on,
        and the joint x time tokens (None without adaptive parts). The joint x time tokens do not
        pass through the bridge: with --adaptive-parts the part and phase scores come from them, so
        cues reach the global score only."""
        if self.args.cue_input == "joints":  # precomputed cue tokens [B, S, D] are per clip: no person axis
            keypoints, confidence, features, heatmaps = with_person_axis(keypoints, confidence, features, heatmaps)
        shaped = next(x for x in (keypoints, confidence, features, heatmaps, joint_features) if x is not None)
        batch = shaped.shape[0]
        per_person = next((x for x in (keypoints, confidence) if x is not None), None)
        if per_person is not None:
            persons = per_person.shape[1]
        else:  # precomputed skeleton features / cue tokens are pooled over persons already
            persons = 1 if shaped is joint_features or self.args.cue_input == "tokens" else shaped.shape[1]
        # Only present persons are encoded (absent ones cost nothing and stay out of batch norm)
        present = present_persons(confidence, batch, persons, shaped.device)
        rows = present.flatten().nonzero().squeeze(1)  # into the folded B*M axis
        clip_of = rows // persons

        def fold_present(x):
            return None if x is None else fold(x)[rows]

        if self.backbone is not None:
            if keypoints is None:
                raise UserError("this model encodes keypoints; it got none")
            fmap = pool_rows(self.backbone(fold_present(keypoints), fold_present(confidence)), clip_of, batch)
        else:
            if joint_features is None:
                raise UserError("this model takes precomputed skeleton features (joint_features); it got none")
            fmap = joint_features.float()
        global_, parts, segments, joint_tokens = self.skeleton(fmap)
        tokens = torch.cat([global_.unsqueeze(1), parts, segments], dim=1) + self.token_type
        if self.args.cues != "none":
            # Each present person's cues answer the clip's skeleton tokens; the answers are averaged.
            cue_tokens = (self.cue_encoder(features[clip_of]) if self.args.cue_input == "tokens"  # one per clip
                          else self.cue_encoder(fold_present(features), fold_present(heatmaps)))
            tokens = pool_rows(self.bridge(tokens[clip_of], cue_tokens), clip_of, batch)
        return tokens, joint_tokens

    def forward(self, keypoints=None, confidence=None, features=None, heatmaps=None, joint_features=None) -> Visual:
        tokens, joint_tokens = self.tokens(keypoints, confidence, features, heatmaps, joint_features)
        n_parts = len(PART_NAMES)
        return Visual(
            F.normalize(self.global_proj(tokens[:, 0]), dim=-1),
            F.normalize(self.part_proj(tokens[:, 1:1 + n_parts]), dim=-1),
            F.normalize(self.segment_proj(tokens[:, 1 + n_parts:]), dim=-1),
            joint_tokens,
        )

    def prototypes(self, name: torch.Tensor, description: torch.Tensor) -> torch.Tensor:
        return self.adapter(name, description)

    def _adaptive(self, joint_tokens: torch.Tensor, text: torch.Tensor, proj: nn.Linear,
                  keys: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K] cosine of each class's description (text [K, D]) with the part of each sample it pools."""
        pooled = F.normalize(proj(self.partition(joint_tokens, text, keys)), dim=-1)  # [B, K, D]
        return torch.einsum("bkd,kd->bk", pooled, F.normalize(text, dim=-1))

    def similarities(self, visual: Visual, prototypes: torch.Tensor, texts: "ClassTextTensors") -> list[Similarity]:
        """Every representation's [B, K] similarities with the classes of `texts` (no labels used)."""
        out = [Similarity("global", visual.global_ @ prototypes.T,
                          torch.ones(len(prototypes), dtype=torch.bool, device=prototypes.device))]
        keys = self.partition.keys(visual.joint_tokens) if self.args.adaptive_parts else None  # once, not per part
        for kind, emb, text, mask, proj in (("part", visual.parts, texts.parts, texts.parts_mask, self.part_proj),
                                            ("phase", visual.segments, texts.temporal, texts.temporal_mask,
                                             self.segment_proj)):
            names = [n for n in REPRESENTATIONS if n.startswith(kind + ":")]
            for p, name in enumerate(names):
                if self.args.adaptive_parts:
                    sim = self._adaptive(visual.joint_tokens, text[:, p], proj, keys)
                else:
                    sim = emb[:, p] @ F.normalize(text[:, p], dim=-1).T
                out.append(Similarity(name, sim * mask[:, p].to(sim.dtype), mask[:, p]))
        return out

    def class_scores(self, visual: Visual, prototypes: torch.Tensor, texts: "ClassTextTensors",
                     part_weight: float, temporal_weight: float) -> torch.Tensor:
        """Unscaled class scores [B,K]: global cosine + weighted mean part and phase similarities
        (each class averaged over the parts it has a text for). Without adaptive parts it equals
        the module-level class_scores()."""
        if not self.args.adaptive_parts:
            return class_scores(visual, prototypes, texts, part_weight, temporal_weight)
        sims = self.similarities(visual, prototypes, texts)
        scores = sims[0].sim
        for kind, weight in (("part", part_weight), ("phase", temporal_weight)):
            if weight:
                scores = scores + weight * masked_mean([s for s in sims if s.name.startswith(kind + ":")])
        return scores


def masked_mean(sims: list[Similarity]) -> torch.Tensor:
    """[B, K]: per class, the mean over the representations it has a text for (0 where none)."""
    total = torch.stack([s.sim for s in sims]).sum(0)
    count = torch.stack([s.classes for s in sims]).sum(0).clamp(min=1)
    return total / count.to(total.dtype)


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

