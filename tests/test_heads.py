"""PoseBridge heads on small random tensors (synthetic inputs: these test mechanics, not accuracy)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from posebridge.cache.schema import skeleton_for_joints
from posebridge.pipeline.errors import UserError
from posebridge.stages.train.heads import (
    ModelArgs, PoseBridge, PrototypeAdapter, SkeletonEncoder, masked_part_similarity, skeleton_layout,
)

B, T, V, VC, C, P2, D = 3, 24, 33, 13, 8, 9, 24


def person_inputs(seed: int = 0, v: int = V, b: int = B):
    """One person per row: keypoints [b, T, v, 3], confidence, features, heatmaps."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, T, v, 3, generator=g), torch.rand(b, T, v, generator=g),
            torch.randn(b, T, VC, C, generator=g), torch.rand(b, T, VC, P2, generator=g))


def inputs(seed: int = 0, v: int = V):
    """What the model takes: M = 1 person per clip, [B, 1, T, ...]."""
    return tuple(x.unsqueeze(1) for x in person_inputs(seed, v))


def make_model(cues: str, seed: int = 0) -> PoseBridge:
    torch.manual_seed(seed)
    return PoseBridge(ModelArgs(num_joints=V, cue_joints=VC, feature_channels=C, heatmap_size=P2, text_dim=D,
                                dim=32, joint_dim=16, layers=2, heads=4, cues=cues))


@pytest.mark.parametrize("cues", ["none", "heatmap", "features", "all"])
def test_output_shapes_and_norms_for_each_cue_mode(cues):
    visual = make_model(cues)(*inputs())
    assert visual.global_.shape == (B, D)
    assert visual.parts.shape == (B, 4, D)
    assert visual.segments.shape == (B, 3, D)
    for t in visual:
        assert torch.allclose(t.norm(dim=-1), torch.ones(t.shape[:-1]), atol=1e-5)
    assert hasattr(make_model(cues), "bridge") == (cues != "none")


@pytest.mark.parametrize("cues,used", [("heatmap", "heatmaps"), ("features", "features")])
def test_each_cue_mode_reads_only_its_cues(cues, used):
    model = make_model(cues)
    with torch.no_grad():
        model.bridge.gate.bias.fill_(1.0)  # open the gate so cues can reach the output
    kp, conf, feat, hm = inputs()
    base = model(kp, conf, feat, hm).global_
    other_feat, other_hm = (feat, hm * 0.5) if used == "heatmaps" else (feat * 2.0, hm)
    changed = model(kp, conf, other_feat, other_hm).global_
    unused_feat, unused_hm = (feat * 2.0, hm) if used == "heatmaps" else (feat, hm * 0.5)
    unchanged = model(kp, conf, unused_feat, unused_hm).global_
    assert not torch.allclose(base, changed)
    assert torch.allclose(base, unchanged)


def test_gate_starts_closed_so_a_fresh_model_ignores_cues():
    model = make_model("all")
    kp, conf, feat, hm = inputs()
    tokens = model.tokens(kp, conf, feat, hm)
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
    assert "skeleton.embed.weight" in changed and "global_proj.weight" in changed


@pytest.mark.parametrize("v", [33, 25, 17])
def test_part_tables_cover_every_joint_once_and_parents_are_valid(v):
    groups, parents = skeleton_layout(v)
    joints = sorted(j for group in groups for j in group)
    assert joints == list(range(v))
    assert len(parents) == v and all(0 <= p < v for p in parents)
    g, parts, s = SkeletonEncoder(v, 16, 8, 1)(*person_inputs(v=v)[:2])
    assert g.shape == (B, 16) and parts.shape == (B, 4, 16) and s.shape == (B, 3, 16)


def test_part_tokens_depend_only_on_their_joints_before_mixing():
    # With no graph/temporal blocks, the "legs" token must ignore a change to the head joints.
    enc = SkeletonEncoder(V, 16, 8, layers=0, motion_bone=False)
    kp, conf = person_inputs()[:2]
    moved = kp.clone()
    moved[:, :, list(skeleton_for_joints(V, "test").parts[0])] += 5.0
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


def test_logit_scale_starts_at_clip_temperature():
    assert math.isclose(float(make_model("none").scale().detach()), 1 / 0.07, rel_tol=1e-5)


def _two_person_model() -> PoseBridge:
    model = make_model("all")
    with torch.no_grad():
        model.bridge.gate.bias.fill_(1.0)  # cues reach the output too
    return model.eval()  # batch norm on running statistics: each row's output depends on that row alone


def test_absent_persons_change_nothing():
    model = _two_person_model()
    one = inputs()
    empty = [torch.zeros_like(x) for x in one]
    empty[0] = torch.randn_like(one[0])  # whatever its coordinates: confidence 0 means nobody is there
    two = [torch.cat([x, e], dim=1) for x, e in zip(one, empty)]  # [B, 2, ...], slot 1 absent
    for a, b in zip(model(*one), model(*two)):
        assert torch.allclose(a, b, atol=1e-6)


def test_present_persons_are_encoded_alone_and_their_tokens_averaged():
    model = _two_person_model()
    a, b = person_inputs(0), person_inputs(1)
    together = [torch.stack([x, y], dim=1) for x, y in zip(a, b)]  # [B, 2, ...]
    expected = (model.person_tokens(*a) + model.person_tokens(*b)) / 2
    assert torch.allclose(model.tokens(*together), expected, atol=1e-5)
    swapped = [torch.stack([y, x], dim=1) for x, y in zip(a, b)]
    assert torch.allclose(model.tokens(*swapped), expected, atol=1e-5)
    # One clip with both, one with only the first: each clip pools its own present persons.
    mixed = [t.clone() for t in together]
    mixed[1][1, 1] = 0.0  # clip 1's second person: confidence 0 everywhere
    tokens = model.tokens(*mixed)
    assert torch.allclose(tokens[0], expected[0], atol=1e-5)
    assert torch.allclose(tokens[1], model.person_tokens(*(x[1:2] for x in a))[0], atol=1e-5)
