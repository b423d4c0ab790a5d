"""PoseBridge heads on small random tensors (synthetic inputs: these test mechanics, not accuracy)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from posebridge.pipeline.errors import UserError
from posebridge.stages.train.heads import (
    PART_JOINTS, PARENTS, AdaptivePartition, ClassTextTensors, CueEncoder, ModelArgs, PoseBridge, PrototypeAdapter,
    SkeletonEncoder, cue_joint_parts, masked_part_similarity, refine_prototypes,
)

B, T, V, VC, C, P2, D = 3, 24, 33, 13, 8, 9, 24


def inputs(seed: int = 0, v: int = V):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, v, 3, generator=g), torch.rand(B, T, v, generator=g),
            torch.randn(B, T, VC, C, generator=g), torch.rand(B, T, VC, P2, generator=g))


def make_model(cues: str, seed: int = 0, **overrides) -> PoseBridge:
    torch.manual_seed(seed)
    return PoseBridge(ModelArgs(**{**dict(num_joints=V, cue_joints=VC, feature_channels=C, heatmap_size=P2, text_dim=D,
                                          dim=32, joint_dim=16, layers=2, heads=4, cues=cues,
                                          cue_joint_ids=tuple(range(VC))), **overrides}))


@pytest.mark.parametrize("cues", ["none", "heatmap", "features", "all"])
def test_output_shapes_and_norms_for_each_cue_mode(cues):
    visual = make_model(cues)(*inputs())
    assert visual.global_.shape == (B, D)
    assert visual.parts.shape == (B, 4, D)
    assert visual.segments.shape == (B, 3, D)
    assert visual.joint_tokens is None  # only with adaptive parts
    for t in visual[:3]:
        assert torch.allclose(t.norm(dim=-1), torch.ones(t.shape[:-1]), atol=1e-5)
    assert hasattr(make_model(cues), "bridge") == (cues != "none")


@pytest.mark.parametrize("cues,used", [("heatmap", "heatmaps"), ("features", "features")])
def test_each_cue_mode_reads_only_its_cues(cues, used):
    # Other cue PATTERNS (fresh draws), not other scales: the feature path normalises scale away,
    # so a rescaled input would differ from the original only by LayerNorm's epsilon.
    model = make_model(cues).eval()
    with torch.no_grad():
        model.bridge.gate.bias.fill_(1.0)  # open the gate so cues can reach the output
    kp, conf, feat, hm = inputs()
    _, _, new_feat, new_hm = inputs(seed=1)
    base = model(kp, conf, feat, hm).global_
    changed = model(kp, conf, *((feat, new_hm) if used == "heatmaps" else (new_feat, hm))).global_
    unchanged = model(kp, conf, *((new_feat, hm) if used == "heatmaps" else (feat, new_hm))).global_
    # Unit vectors: a new cue pattern through an open gate moves them by far more than rounding.
    assert (base - changed).norm(dim=-1).min() > 1e-3
    assert torch.equal(base, unchanged)  # the unused cue never enters the computation


def test_gate_starts_closed_so_a_fresh_model_ignores_cues():
    model = make_model("all")
    kp, conf, feat, hm = inputs()
    tokens, _ = model.tokens(kp, conf, feat, hm)
    assert model.bridge.gate_values(tokens).abs().max() < 1e-6
    a = model(kp, conf, feat, hm).global_
    b = model(kp, conf, feat * 3.0 + 1.0, torch.rand_like(hm)).global_
    assert torch.allclose(a, b, atol=1e-6)


def test_one_optimisation_step_changes_weights_and_opens_the_gate():
    model = make_model("all")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    visual = model(*inputs())
    loss = -(visual.global_[:, 0].sum() + visual.parts.sum() + visual.segments.sum())
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "bridge.gate.weight" in changed
    assert "backbone.embed.weight" in changed and "global_proj.weight" in changed


@pytest.mark.parametrize("v", [33, 25, 17])
def test_part_tables_cover_every_joint_once_and_parents_are_valid(v):
    joints = sorted(j for group in PART_JOINTS[v] for j in group)
    assert joints == list(range(v))
    assert len(PARENTS[v]) == v and all(0 <= p < v for p in PARENTS[v])
    g, parts, s = SkeletonEncoder(v, 16, 8, 1)(*inputs(v=v)[:2])
    assert g.shape == (B, 16) and parts.shape == (B, 4, 16) and s.shape == (B, 3, 16)


def test_part_tokens_depend_only_on_their_joints_before_mixing():
    # With no graph/temporal blocks, the "legs" token must ignore a change to the head joints.
    enc = SkeletonEncoder(V, 16, 8, layers=0, motion_bone=False)
    kp, conf = inputs()[:2]
    moved = kp.clone()
    moved[:, :, list(PART_JOINTS[V][0])] += 5.0
    _, parts_a, _ = enc(kp, conf)
    _, parts_b, _ = enc(moved, conf)
    assert not torch.allclose(parts_a[:, 0], parts_b[:, 0])
    assert torch.allclose(parts_a[:, 3], parts_b[:, 3])


def test_unknown_skeleton_size_is_a_user_error():
    with pytest.raises(UserError, match="18 joints"):
        SkeletonEncoder(18, 16)


def test_fresh_adapter_returns_the_normalised_name_description_mix():
    name, desc = F.normalize(torch.randn(5, D), dim=-1), F.normalize(torch.randn(5, D), dim=-1)
    adapted = PrototypeAdapter(D, 16, mix=0.25)(name, desc)
    assert torch.allclose(adapted, F.normalize(0.25 * name + 0.75 * desc, dim=-1), atol=1e-6)


def test_masked_part_similarity_averages_only_present_parts():
    emb = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one sample, two parts
    text = torch.tensor([[[1.0, 0.0], [1.0, 0.0]],   # class 0: part 0 matches (1), part 1 orthogonal (0)
                         [[0.0, 1.0], [0.0, 1.0]]])  # class 1: part 0 orthogonal, part 1 matches
    mask = torch.tensor([[True, True], [False, True]])
    sim = masked_part_similarity(emb, text, mask)
    assert torch.allclose(sim, torch.tensor([[0.5, 1.0]]))
    assert torch.allclose(masked_part_similarity(emb, text, torch.zeros(2, 2, dtype=torch.bool)), torch.zeros(1, 2))


def test_refinement_moves_only_refinable_classes_toward_confident_members():
    protos = torch.eye(3)
    emb = F.normalize(torch.tensor([[1.0, 0.2, 0.0], [1.0, 0.4, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    logits = 50.0 * emb @ protos.T
    refined = refine_prototypes(emb, protos, logits, torch.tensor([True, True, False]),
                                per_class=8, min_conf=0.5, step=0.5)
    assert refined[0, 1] > 0  # pulled toward the two confident class-0 members
    assert torch.allclose(refined[0].norm(), torch.tensor(1.0))
    assert torch.equal(refined[1], protos[1])  # no members
    assert torch.equal(refined[2], protos[2])  # not refinable (a seen class)
    capped = refine_prototypes(emb, protos, logits, torch.tensor([True, False, False]), per_class=1,
                               min_conf=0.5, step=1.0)
    most_confident = emb[logits.softmax(-1)[:2, 0].argmax()]
    assert torch.allclose(capped[0], most_confident, atol=1e-6)


def test_logit_scale_starts_at_clip_temperature():
    assert math.isclose(float(make_model("none").scale().detach()), 1 / 0.07, rel_tol=1e-5)
