"""PoseBridge heads on small random tensors (synthetic inputs: these test mechanics, not accuracy)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from posebridge.cache.schema import skeleton_for_joints
from posebridge.cache.errors import UserError
from posebridge.stages.train.heads import (
    AdaptivePartition, ClassTextTensors, CueEncoder, ModelArgs, PoseBridge, PrototypeAdapter, SkeletonEncoder,
    cue_joint_parts, masked_part_similarity, skeleton_layout,
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
    assert torch.equal(a, b)  # a closed gate adds exactly 0 * attended


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


def test_adaptive_partition_attention_matches_a_hand_computed_case():
    # Two tokens e1, e2; identity query/key maps on head 0, head 1 all zeros (PURLS averages the
    # head logits before the softmax, so head 1 halves the logit).
    part = AdaptivePartition(token_dim=2, text_dim=2, key_dim=2, heads=2)
    with torch.no_grad():
        part.query.weight.zero_()
        part.key.weight.zero_()
        part.query.weight[:2] = torch.eye(2)
        part.key.weight[:2] = torch.eye(2)
    tokens = torch.eye(2, dtype=torch.float64).unsqueeze(0)  # [1, L=2, 2]
    a = 2 * math.sqrt(2) * math.log(3)  # logit (a / sqrt(2)) / 2 heads = ln 3 -> softmax (3/4, 1/4)
    queries = torch.tensor([[a, 0.0], [0.0, 0.0]], dtype=torch.float64)  # class 0 looks for e1; class 1 at nothing
    part = part.double()
    weights = part.weights(tokens, queries)
    assert torch.allclose(weights, torch.tensor([[[0.75, 0.25], [0.5, 0.5]]], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(part(tokens, queries), torch.tensor([[[0.75, 0.25], [0.5, 0.5]]], dtype=torch.float64),
                          atol=1e-12)


def adaptive_model_and_texts(k: int = 5):
    model = make_model("all", adaptive_parts=True).eval()
    g = torch.Generator().manual_seed(3)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    texts = ClassTextTensors(unit(k, D), unit(k, D), unit(k, 4, D), torch.ones(k, 4, dtype=torch.bool),
                             unit(k, 3, D), torch.ones(k, 3, dtype=torch.bool))
    return model, texts


def test_adaptive_scores_query_with_each_classs_own_descriptions():
    model, texts = adaptive_model_and_texts()
    with torch.no_grad():
        visual = model(*inputs())
        assert visual.joint_tokens.shape == (B, 3 * V, 32)
        protos = model.prototypes(texts.name, texts.description)
        scores = model.class_scores(visual, protos, texts, 0.3, 0.3)
        # No labels go in; a change to class 2's part descriptions changes class 2's column only
        other = ClassTextTensors(**{**texts.__dict__, "parts": texts.parts.clone()})
        other.parts[2] = F.normalize(torch.randn(4, D), dim=-1)
        changed = model.class_scores(visual, protos, other, 0.3, 0.3)
    moved = (changed - scores).abs().amax(dim=0)
    assert moved[2] > 1e-4 and torch.equal(torch.cat([moved[:2], moved[3:]]), torch.zeros(4))
    # each class's part score is the cosine of its description with what that description pooled
    sims = model.similarities(visual, protos, texts)
    pooled = model.partition(visual.joint_tokens, texts.parts[:, 1])  # hands descriptions
    by_hand = torch.einsum("bkd,kd->bk", F.normalize(model.part_proj(pooled), dim=-1), texts.parts[:, 1])
    assert sims[2].name == "part:hands" and torch.allclose(sims[2].sim, by_hand, atol=1e-6)


def test_cue_tokens_are_16_steps_of_joints_and_body_part_means():
    parts = cue_joint_parts(V, tuple(range(VC)))  # BlazePose joints 0..12: head 0..10, torso 11, 12
    assert parts == (0,) * 11 + (2, 2)
    enc = CueEncoder(VC, C, P2, 8, "all", steps=16, joint_parts=parts)
    _, _, feat, hm = person_inputs()
    tokens = enc(feat, hm)
    assert tokens.shape == (B, 16 * (VC + 2), 8)  # per step: 13 joints + head and torso pools
    # the body-part pool is the mean over the part's cue joints (hand-checkable weights)
    assert torch.allclose(enc.part_pool[1], torch.tensor([0.0] * 11 + [0.5, 0.5]))
    # the tokens of step s depend only on the frames of window s (T = 24 frames -> 16 windows)
    late = feat.clone()
    late[:, -1] += 3.0 * torch.randn_like(late[:, -1])
    moved = (enc(late, hm) - tokens).abs().amax(dim=(0, 2)).view(16, VC + 2)
    assert torch.equal(moved[:15], torch.zeros(15, VC + 2)) and bool((moved[15] > 0).all())


def _two_person_model() -> PoseBridge:
    model = make_model("all")
    with torch.no_grad():
        model.bridge.gate.bias.fill_(1.0)  # cues reach the output too
    return model.eval()  # batch norm on running statistics: each row's output depends on that row alone


def test_schema_one_inputs_get_one_person_slot():
    model = _two_person_model()
    with torch.no_grad():
        a = model(*inputs()).global_
        b = model(*person_inputs()).global_  # no M axis: persons.with_person_axis adds M = 1
    assert torch.equal(a, b)


def test_absent_persons_change_nothing():
    model = _two_person_model()
    one = inputs()
    empty = [torch.zeros_like(x) for x in one]
    empty[0] = torch.randn_like(one[0])  # whatever its coordinates: confidence 0 means nobody is there
    two = [torch.cat([x, e], dim=1) for x, e in zip(one, empty)]  # [B, 2, ...], slot 1 absent
    with torch.no_grad():
        for a, b in zip(model(*one)[:3], model(*two)[:3]):
            assert torch.allclose(a, b, atol=1e-6)


def test_present_persons_are_pooled_whatever_their_slot_order():
    model = _two_person_model()
    a, b = person_inputs(0), person_inputs(1)
    together = [torch.stack([x, y], dim=1) for x, y in zip(a, b)]  # [B, 2, ...]
    swapped = [torch.stack([y, x], dim=1) for x, y in zip(a, b)]
    with torch.no_grad():
        tokens, _ = model.tokens(*together)
        assert torch.allclose(model.tokens(*swapped)[0], tokens, atol=1e-5)
        alone, _ = model.tokens(*(x.unsqueeze(1) for x in a))
        assert (tokens - alone).norm(dim=-1).min() > 1e-3  # the second person counts
        # one clip with both, one with only the first: each clip pools its own present persons
        mixed = [t.clone() for t in together]
        mixed[1][1, 1] = 0.0  # clip 1's second person: confidence 0 everywhere
        pooled, _ = model.tokens(*mixed)
    assert torch.allclose(pooled[0], tokens[0], atol=1e-5)
    assert torch.allclose(pooled[1], alone[1], atol=1e-5)


def test_precomputed_features_entry_point_takes_no_keypoints():
    model = make_model("none", skeleton_input="features", skeleton_channels=12, adaptive_parts=True).eval()
    assert model.backbone is None
    joint = torch.randn(B, 12, 3, V)  # [B, W, T', V], as a SynSE / PURLS *_feature.npy row
    visual = model(None, None, joint_features=joint)
    assert visual.global_.shape == (B, D) and visual.joint_tokens.shape == (B, 3 * V, 32)
    with pytest.raises(UserError, match="at least 3"):
        model(None, None, joint_features=torch.randn(B, 12, 2, V))


def test_mask_dropout_is_dropout():
    """MaskDropout (the shared MLP's faster dropout) keeps nn.Dropout's function: identity in eval,
    and in training each element zeroed with probability p, the rest scaled by 1/(1-p)."""
    from posebridge.stages.train.heads import MaskDropout

    x = torch.full((200, 500), 3.0, requires_grad=True)
    layer = MaskDropout(0.5)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    torch.manual_seed(0)
    y = layer(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 6.0}
    zeroed = (y == 0).float().mean().item()
    assert 0.47 < zeroed < 0.53  # 100,000 draws: 0.5 +- 0.005 (std 0.0016)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)  # the gradient flows through the kept elements only
    with pytest.raises(ValueError):
        MaskDropout(1.0)
