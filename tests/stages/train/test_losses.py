"""Alignment losses against values worked out by hand."""
from __future__ import annotations

import math

import torch

from posebridge.stages.train.heads import ClassTextTensors, Visual
from posebridge.stages.train.losses import LossWeights, info_nce, masked_alignment, posebridge_loss, semantic_targets


def test_info_nce_matches_hand_computed_cross_entropy():
    visual = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside: e1, e2
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # correct class has cosine 1, the other 0: -log(e^s / (e^s + 1)) = log(1 + e^-s)
    assert math.isclose(float(info_nce(visual, protos, torch.tensor([0, 1]), 1.0)), math.log(1 + math.e ** -1), rel_tol=1e-6)
    # at s = 10 the loss (4.5e-5) is below float32's resolution of logits near 10: check it in float64
    assert math.isclose(float(info_nce(visual.double(), protos.double(), torch.tensor([0, 1]), 10.0)),
                        math.log(1 + math.e ** -10), rel_tol=1e-9)
    # wrong targets: -log(1 / (e^s + 1))
    assert math.isclose(float(info_nce(visual, protos, torch.tensor([1, 0]), 1.0)), math.log(1 + math.e), rel_tol=1e-6)


def test_semantic_targets_mix_one_hot_with_the_texts_class_similarities():
    # classes 0 and 1 have alike texts (cosine 0.8), class 2 is apart (cosine 0)
    protos = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    targets = torch.tensor([0, 2])
    assert torch.equal(semantic_targets(protos, targets, 5.0, 0.0), torch.eye(3)[targets])
    soft = semantic_targets(protos, targets, 5.0, 0.5)
    assert torch.allclose(soft.sum(1), torch.ones(2))
    z = math.exp(5.0) + math.exp(4.0) + 1.0  # label 0's text row at scale 5: cosines 1, 0.8, 0
    expected0 = [0.5 + 0.5 * math.exp(5.0) / z, 0.5 * math.exp(4.0) / z, 0.5 / z]
    assert torch.allclose(soft[0], torch.tensor(expected0), atol=1e-6)
    assert soft[0, 1] > soft[0, 2]  # the alike class gets more of the target than the unlike one
    # the soft loss is the cross-entropy against those targets; soft 0 is the one-hot loss
    visual = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.1, 1.0]])
    logits = 5.0 * torch.nn.functional.normalize(visual, dim=-1) @ torch.nn.functional.normalize(protos, dim=-1).T
    assert math.isclose(float(info_nce(visual, protos, targets, 5.0, 0.5)),
                        float(-(soft * logits.log_softmax(-1)).sum(1).mean()), rel_tol=1e-6)
    assert float(info_nce(visual, protos, targets, 5.0, 0.0)) == float(info_nce(visual, protos, targets, 5.0))


def test_masked_alignment_skips_samples_whose_class_has_no_texts():
    emb = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two samples, one part each
    text = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    mask = torch.tensor([[True], [False]])  # class 1 has no part text
    loss = masked_alignment(emb, text, mask, torch.tensor([0, 1]), 1.0)
    # only sample 0 counts; class 1's score is 0 (no texts): -log(e / (e + 1))
    assert math.isclose(float(loss), math.log(1 + math.e ** -1), rel_tol=1e-6)
    emb.requires_grad_(True)
    none = masked_alignment(emb, text, torch.zeros(2, 1, dtype=torch.bool), torch.tensor([0, 1]), 1.0)
    none.backward()
    assert float(none.detach()) == 0.0 and emb.grad is not None


def test_total_is_the_weighted_sum_of_the_three_terms():
    g = torch.Generator().manual_seed(0)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    visual = Visual(unit(4, 6), unit(4, 4, 6), unit(4, 3, 6))
    texts = ClassTextTensors(unit(3, 6), unit(3, 6), unit(3, 4, 6), torch.ones(3, 4, dtype=torch.bool),
                             unit(3, 3, 6), torch.ones(3, 3, dtype=torch.bool))
    targets = torch.tensor([0, 1, 2, 0])
    total, terms = posebridge_loss(visual, texts.name, texts, targets, torch.tensor(5.0), LossWeights(1.0, 0.5, 0.25))
    assert math.isclose(float(total), terms["global"] + 0.5 * terms["part"] + 0.25 * terms["temporal"], rel_tol=1e-6)
    only_global, _ = posebridge_loss(visual, texts.name, texts, targets, torch.tensor(5.0), LossWeights(1.0, 0.0, 0.0))
    assert math.isclose(float(only_global), terms["global"], rel_tol=1e-6)


def test_symmetric_contrastive_matches_hand_computed_values():
    from posebridge.stages.train.losses import symmetric_contrastive

    d = torch.float64  # tolerances below follow from float64 rounding, not luck
    # one sample per class, cosine 1 with its own class, 0 with the other, temperature 1:
    # both directions are -log(e / (e + 1)) = log(1 + e^-1)
    sim = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=d)
    everything = torch.ones(2, dtype=torch.bool)
    loss = symmetric_contrastive(sim, torch.tensor([0, 1]), everything, 1.0)
    assert math.isclose(float(loss), 2 * math.log(1 + math.e ** -1), rel_tol=1e-12)
    # two samples of class 0: text->skeleton averages -log softmax over the batch of both positives
    sim = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]], dtype=d)
    loss = symmetric_contrastive(sim, torch.tensor([0, 0, 1]), everything, 1.0)
    s2t = (math.log(1 + math.e ** -1) + math.log(1 + math.e ** -0.5) + math.log(1 + math.e ** -1)) / 3
    lse0 = math.log(math.e + math.e ** 0.5 + 1)  # column of class 0: [1, 0.5, 0]
    lse1 = math.log(2 + math.e)  # column of class 1: [0, 0, 1]
    t2s = ((lse0 - 0.75) + (lse1 - 1.0)) / 2
    assert math.isclose(float(loss), s2t + t2s, rel_tol=1e-12)
    # the temperature multiplies the cosines
    hot = symmetric_contrastive(sim, torch.tensor([0, 0, 1]), everything, 2.0)
    assert math.isclose(float(hot), float(symmetric_contrastive(2 * sim, torch.tensor([0, 0, 1]), everything, 1.0)),
                        rel_tol=1e-12)


def test_symmetric_contrastive_leaves_out_classes_without_a_text():
    from posebridge.stages.train.losses import symmetric_contrastive

    d = torch.float64
    sim = torch.tensor([[1.0, 0.0, 7.0], [0.0, 1.0, 7.0], [3.0, 3.0, 3.0]], dtype=d)
    has_text = torch.tensor([True, True, False])
    # class 2 has no text: its column and its sample (row 2) drop out; what is left is the first case
    loss = symmetric_contrastive(sim, torch.tensor([0, 1, 2]), has_text, 1.0)
    assert math.isclose(float(loss), 2 * math.log(1 + math.e ** -1), rel_tol=1e-12)
    nothing = symmetric_contrastive(sim.requires_grad_(True), torch.tensor([2, 2, 2]), has_text, 1.0)
    nothing.backward()
    assert float(nothing.detach()) == 0.0 and sim.grad is not None


def test_representation_losses_weigh_global_parts_and_phases_with_their_own_temperatures():
    from posebridge.stages.train.heads import REPRESENTATIONS, Similarity
    from posebridge.stages.train.losses import representation_losses, symmetric_contrastive

    d = torch.float64
    g = torch.Generator().manual_seed(0)
    targets = torch.tensor([0, 1, 2, 0])
    every = torch.ones(3, dtype=torch.bool)
    sims = [Similarity(n, torch.rand(4, 3, generator=g, dtype=d) * 2 - 1, every) for n in REPRESENTATIONS]
    temps = [torch.tensor(float(i + 1), dtype=d) for i in range(len(sims))]
    total, terms = representation_losses(sims, targets, temps, LossWeights(1.0, 0.5, 0.25))
    each = [float(symmetric_contrastive(s.sim, targets, s.classes, t)) for s, t in zip(sims, temps)]
    expected = each[0] + 0.5 * sum(each[1:5]) / 4 + 0.25 * sum(each[5:8]) / 3
    assert math.isclose(float(total), expected, rel_tol=1e-12)
    assert math.isclose(terms["global"], each[0], rel_tol=1e-12)
