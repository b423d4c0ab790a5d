"""ZSL / GZSL metrics on small cases checked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from posebridge.stages.eval.metrics import (
    aggregate, calibrated_predictions, choose_gamma, confusion_matrix, gzsl, harmonic_mean,
    mean_class_accuracy, per_class_accuracy, zsl_topk,
)

SCORES = np.array([
    [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0: top-1 hit
    [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 1: rank 2
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # label 0: rank 6 (miss even at top-5)
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label 5: top-1 hit
])
LABELS = np.array([0, 1, 0, 5])


def test_topk_by_hand():
    assert zsl_topk(SCORES, LABELS) == {"top1": 0.5, "top5": 0.75}
    assert "top5" not in zsl_topk(SCORES[:, :2], np.array([0, 1, 0, 1]), ks=(1, 5))  # 2 classes: no top-5
    assert zsl_topk(SCORES[:, :5], np.array([0, 1, 0, 1]), ks=(5,)) == {}  # top-5 of 5 classes: every sample a hit


def test_per_class_and_mean_class_accuracy_by_hand():
    preds = SCORES.argmax(1)  # [0, 0, 5, 5]
    acc = per_class_accuracy(preds, LABELS, 6)
    assert acc[0] == 0.5 and acc[1] == 0.0 and acc[5] == 1.0
    assert np.isnan(acc[2:5]).all()
    assert mean_class_accuracy(preds, LABELS, 6) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    cm = confusion_matrix(preds, LABELS, 6)
    assert cm[0, 0] == 1 and cm[0, 5] == 1 and cm[1, 0] == 1 and cm[5, 5] == 1 and cm.sum() == 4


def test_harmonic_mean_by_hand():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert harmonic_mean(0.0, 0.0) == 0.0


# Binary-exact values, so equal flip points are equal in floating point too.
GZSL_SCORES = np.array([
    [0.75, 0.125, 0.5],  # seen class 0, correct
    [0.25, 0.875, 0.125],  # seen class 1, correct
    [0.75, 0.0, 0.5],  # unseen class 2, predicted 0 (a seen-class bias of 0.25)
    [0.125, 0.0, 0.875],  # unseen class 2, correct
])
GZSL_LABELS = np.array([0, 1, 2, 2])
SEEN = np.array([True, True, False])


def test_gzsl_seen_unseen_and_h_by_hand():
    out = gzsl(GZSL_SCORES, GZSL_LABELS, SEEN, gamma=0.0)
    assert out["seen"] == 1.0 and out["unseen"] == 0.5 and out["h"] == pytest.approx(2 / 3)


def test_calibrated_stacking_flips_a_prediction_for_a_large_gamma():
    assert calibrated_predictions(GZSL_SCORES, SEEN, 0.0)[2] == 0
    assert calibrated_predictions(GZSL_SCORES, SEEN, 0.3)[2] == 2
    out = gzsl(GZSL_SCORES, GZSL_LABELS, SEEN, gamma=0.3)  # sample 0: 0.45 vs 0.5 -> now wrong
    assert out["unseen"] == 1.0 and out["seen"] == 0.5
    assert gzsl(GZSL_SCORES, GZSL_LABELS, SEEN, gamma=5.0)["seen"] == 0.0


def test_choose_gamma_maximises_h_and_prefers_the_smallest_shift():
    gamma = choose_gamma(GZSL_SCORES, GZSL_LABELS, SEEN)
    # flip points (best seen - best unseen): 0.25, 0.75, 0.25, -0.75. Gamma in (-0.75, 0.25) gives
    # S=1, U=0.5; gamma in (0.25, 0.75) fixes sample 2 but breaks sample 0: S=0.5, U=1. Both H=2/3, and
    # the tie goes to the range that contains 0.
    assert gamma == 0.0
    assert gzsl(GZSL_SCORES, GZSL_LABELS, SEEN, gamma)["h"] == pytest.approx(2 / 3)
    biased = np.array([[0.75, 0.125, 0.5], [0.25, 0.875, 0.125], [0.75, 0.0, 0.625], [0.875, 0.0, 0.8125]])
    g = choose_gamma(biased, GZSL_LABELS, SEEN)  # flips at 0.25, 0.75, 0.125, 0.0625 -> H=1 in (0.125, 0.25)
    assert 0.125 < g < 0.25
    assert gzsl(biased, GZSL_LABELS, SEEN, g)["h"] == 1.0


def test_choose_gamma_degenerate_cases_return_zero():
    assert choose_gamma(GZSL_SCORES, GZSL_LABELS, np.array([True, True, True])) == 0.0
    assert choose_gamma(np.zeros((0, 3)), np.zeros(0, dtype=int), SEEN) == 0.0


def test_aggregate_mean_and_sample_std_over_seeds():
    runs = [{"zsl": {"top1": 0.5}, "split": "x"}, {"zsl": {"top1": 0.7}}, {"zsl": {"top1": 0.6}}]
    stats = aggregate(runs)["zsl.top1"]
    assert stats["mean"] == pytest.approx(0.6) and stats["std"] == pytest.approx(0.1) and stats["n"] == 3
    assert aggregate([{"a": 1.0}])["a"]["std"] == 0.0
    assert math.isnan(aggregate([{"a": math.nan}])["a"]["mean"])


def test_an_exact_seen_unseen_tie_goes_to_the_unseen_side_as_choose_gamma_assumes():
    """Column order must not decide a tie: choose_gamma's candidates assume ties go to unseen."""
    from posebridge.stages.eval.metrics import calibrated_predictions, choose_gamma, gzsl

    scores = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], np.float32)
    labels, seen = np.array([1, 0, 1]), np.array([True, False])
    assert calibrated_predictions(scores, seen, 0.0).tolist() == [1, 0, 1]
    gamma = choose_gamma(scores, labels, seen)
    assert gzsl(scores, labels, seen, gamma)["h"] == 1.0
    # brute force over a grid agrees with the fast search on random ties
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.integers(0, 4, size=(30, 5)).astype(float)  # many exact ties
        y, mask = rng.integers(0, 5, size=30), np.array([True, True, False, True, False])
        best = max(gzsl(s, y, mask, g)["h"] for g in np.linspace(-5, 5, 201))
        assert gzsl(s, y, mask, choose_gamma(s, y, mask))["h"] == pytest.approx(best)
