"""Alignment losses against values worked out by hand."""
from __future__ import annotations

import math

import torch

from posebridge.stages.train.heads import ClassTextTensors, Visual
from posebridge.stages.train.losses import LossWeights, info_nce, masked_alignment, posebridge_loss


def test_info_nce_matches_hand_computed_cross_entropy():
    visual = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside: e1, e2
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # correct class has cosine 1, the other 0: -log(e^s / (e^s + 1)) = log(1 + e^-s)
    assert math.isclose(float(info_nce(visual, protos, torch.tensor([0, 1]), 1.0)), math.log(1 + math.e ** -1), rel_tol=1e-6)
    assert math.isclose(float(info_nce(visual, protos, torch.tensor([0, 1]), 10.0)), math.log(1 + math.e ** -10), rel_tol=1e-2)
    # wrong targets: -log(1 / (e^s + 1))
    assert math.isclose(float(info_nce(visual, protos, torch.tensor([1, 0]), 1.0)), math.log(1 + math.e), rel_tol=1e-6)


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
