"""DynaPURLS test-time refinement (stages/eval/refinement.py) on small hand-made embeddings."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from posebridge.stages.eval.refinement import ClassMemory, RefinementSettings, refine_scores

K, D = 4, 6


def clusters(seed: int = 0, per_class: int = 40, spread: float = 0.35):
    """Unit embeddings around K orthogonal class directions (labels), and prototypes that are those
    directions pulled toward a shared one: right in direction, but too alike (small margins)."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.eye(K, D)
    labels = torch.arange(K).repeat(per_class)
    labels = labels[torch.randperm(len(labels), generator=g)]
    emb = F.normalize(truth[labels] + spread * torch.randn(len(labels), D, generator=g), dim=-1)
    shared = F.normalize(torch.ones(D), dim=0)
    protos = F.normalize(truth + 1.2 * shared, dim=-1)
    return emb, labels, protos


def plain(emb, protos, extra):
    return emb @ protos.T + extra


def test_memory_keeps_the_most_confident_per_class_and_is_class_balanced():
    memory = ClassMemory(num_classes=3, size=2, device=torch.device("cpu"))
    rows = torch.arange(10, 15)
    memory.add(rows, torch.tensor([0.3, 0.9, 0.5, 0.7, 0.2]), torch.tensor([0, 0, 0, 1, 0]))
    kept, labels = memory.filled()
    assert labels.tolist() == [0, 0, 1]  # class 0 capped at 2, class 1 keeps its one sample, class 2 none
    assert kept.tolist() == [11, 12, 13]  # class 0: confidences 0.9 and 0.5, most confident first
    memory.add(torch.tensor([99]), torch.tensor([0.6]), torch.tensor([0]))  # beats 0.5
    assert memory.confidence[0].tolist() == [0.8999999761581421, 0.6000000238418579]
    assert int(memory.rows[0, 1]) == 99


def test_without_learning_the_scores_are_the_plain_ones():
    emb, _, protos = clusters()
    extra = 0.1 * torch.randn(len(emb), K, generator=torch.Generator().manual_seed(1))
    out = refine_scores(emb, extra, protos, torch.ones(K, dtype=torch.bool), 30.0, RefinementSettings(lr=0.0))
    # scale 1 and shift 0 renormalise unit prototypes: equal up to float rounding of a unit vector
    assert torch.allclose(out, plain(emb, protos, extra), atol=1e-6)


def test_only_refinable_columns_change():
    emb, _, protos = clusters()
    extra = torch.zeros(len(emb), K)
    refine = torch.tensor([True, True, False, True])
    out = refine_scores(emb, extra, protos, refine, 20.0, RefinementSettings(batch=32, steps=2))
    before = plain(emb, protos, extra)
    assert torch.equal(out[:, ~refine], before[:, ~refine])  # the seen class's column is untouched
    assert not torch.allclose(out[:, refine], before[:, refine])


def test_steps_lower_the_pseudo_label_loss_of_the_memory():
    """One batch whose samples all fit in the memory: the steps are gradient descent on the cross-
    entropy of the batch against its own first pseudo-labels, so that loss must go down."""
    emb, _, protos = clusters()
    extra = torch.zeros(len(emb), K)
    before = plain(emb, protos, extra)
    pseudo = before.argmax(1)  # every max softmax prob is >= 1/K > min_confidence: all enter
    settings = RefinementSettings(batch=len(emb), memory=len(emb), steps=10, lr=1e-2)
    out = refine_scores(emb, extra, protos, torch.ones(K, dtype=torch.bool), 20.0, settings)
    loss = lambda s: float(F.cross_entropy(20.0 * s, pseudo))  # noqa: E731
    assert loss(out) < loss(before) - 0.01, (loss(before), loss(out))


def test_streaming_is_deterministic_and_causal():
    """Batches come in row order: a batch's scores depend on it and the batches before it, never after."""
    emb, _, protos = clusters()
    extra = torch.zeros(len(emb), K)
    refine = torch.ones(K, dtype=torch.bool)
    settings = RefinementSettings(batch=40)
    first = refine_scores(emb, extra, protos, refine, 20.0, settings)
    assert torch.equal(first, refine_scores(emb, extra, protos, refine, 20.0, settings))
    changed = emb.clone()
    changed[80:] = F.normalize(torch.randn(len(emb) - 80, D, generator=torch.Generator().manual_seed(5)), dim=-1)
    second = refine_scores(changed, extra, protos, refine, 20.0, settings)
    assert torch.equal(second[:80], first[:80])  # the first two batches saw nothing of the changed rows
    assert not torch.allclose(second[80:], first[80:])


def test_each_batch_enters_the_memory_once_whatever_the_steps(monkeypatch):
    """With several steps per batch the memory must not fill with copies of the same samples."""
    from posebridge.stages.eval import refinement

    added, real_add = [], ClassMemory.add

    def counting(self, rows, confidence, label):
        added.append(len(label))
        return real_add(self, rows, confidence, label)

    monkeypatch.setattr(refinement.ClassMemory, "add", counting)
    emb, _, protos = clusters()
    settings = RefinementSettings(batch=40, memory=len(emb), steps=3)
    refine_scores(emb, torch.zeros(len(emb), K), protos, torch.ones(K, dtype=torch.bool), 20.0, settings)
    assert len(added) == len(emb) // 40 and sum(added) <= len(emb)  # one add per batch, each sample at most once


# --- settings from the command line / presets (DynaPURLS test.py, test_time_utils.py) -------------

def test_shuffled_order_is_reproducible_per_seed_and_returns_row_order():
    emb, _, protos = clusters()
    extra, refine = torch.zeros(len(emb), K), torch.ones(K, dtype=torch.bool)
    run = lambda **kw: refine_scores(emb, extra, protos, refine, 20.0, RefinementSettings(batch=40, **kw))  # noqa: E731
    fixed, shuffled = run(), run(order="shuffled", seed=3)
    assert torch.equal(shuffled, run(order="shuffled", seed=3))  # same seed, same scores
    assert not torch.allclose(shuffled, run(order="shuffled", seed=4))  # another seed, another stream
    assert not torch.allclose(shuffled, fixed)
    # rows come back in their own order: the same sample's scores stay near its unrefined ones
    assert (shuffled.argmax(1) == plain(emb, protos, extra).argmax(1)).float().mean() > 0.9


def test_cosine_schedule_follows_dynapurls_cosine_annealing():
    emb, _, protos = clusters()
    trace = []
    refine_scores(emb, torch.zeros(len(emb), K), protos, torch.ones(K, dtype=torch.bool), 20.0,
                  RefinementSettings(batch=40, steps=4, lr=1e-2, schedule="cosine"), lr_trace=trace)
    # CosineAnnealingLR(T_max = steps = 4, eta_min = 1e-3): 1e-2, then down the half cosine to 1e-3
    expected = [1e-3 + 0.5 * 9e-3 * (1 + math.cos(math.pi * i / 4)) for i in range(5)]
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(trace[:5], expected)), trace[:5]
    constant = []
    refine_scores(emb, torch.zeros(len(emb), K), protos, torch.ones(K, dtype=torch.bool), 20.0,
                  RefinementSettings(batch=40, steps=4, lr=1e-2), lr_trace=constant)
    assert set(constant) == {1e-2}


def test_cosine_logits_ignore_the_model_scale():
    emb, _, protos = clusters()
    extra, refine = torch.zeros(len(emb), K), torch.ones(K, dtype=torch.bool)
    settings = RefinementSettings(batch=40, logits="cosine")
    assert torch.equal(refine_scores(emb, extra, protos, refine, 20.0, settings),
                       refine_scores(emb, extra, protos, refine, 1.0, settings))
    assert not torch.equal(refine_scores(emb, extra, protos, refine, 20.0, RefinementSettings(batch=40)),
                           refine_scores(emb, extra, protos, refine, 1.0, RefinementSettings(batch=40)))


def test_ttr_flags_reach_the_refinement_settings(monkeypatch, capsys):
    import posebridge.pipeline.run as run
    from posebridge.pipeline import cli
    from posebridge.stages.eval.refinement import RefinementSettings

    seen = {}
    monkeypatch.setattr(run, "train_splits", lambda splits, base, **kw: seen.setdefault("base", base) and [])
    try:
        cli.main(["train", "--split", "synthetic", "--preset", "dynapurls", "--text-encoder", "minilm",
                  "--ttr-lr", "0.005", "--ttr-steps", "3", "--ttr-memory", "8", "--ttr-threshold", "0.2",
                  "--ttr-order", "fixed", "--ttr-schedule", "constant", "--seed", "7"])
    except SystemExit as done:
        assert done.code == 0, capsys.readouterr().err
    settings = RefinementSettings.from_config(seen["base"])
    assert (settings.lr, settings.steps, settings.memory, settings.min_confidence) == (0.005, 3, 8, 0.2)
    assert (settings.order, settings.schedule, settings.logits, settings.seed) == ("fixed", "constant", "cosine", 7)
    dyna = RefinementSettings.from_config(seen["base"].__class__(split="x", ttr=True, gzsl_calibration="none"))
    assert dyna.order == "fixed"  # the posebridge default


def test_refining_every_text_adapts_the_part_and_phase_texts_too():
    """--ttr-refine all (DynaPURLS refines all 8 text features): with part / phase score terms the
    scores differ from refining the global prototypes only; with global-only scores they agree."""
    import numpy as np

    from posebridge.stages.eval.scoring import score
    from posebridge.stages.train.config import TrainConfig
    from posebridge.stages.train.heads import ClassTextTensors
    from tests.stages.train.test_heads import inputs, make_model

    model = make_model("none").eval()
    g = torch.Generator().manual_seed(4)
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    texts = ClassTextTensors(unit(4, 24), unit(4, 24), unit(4, 4, 24), torch.ones(4, 4, dtype=torch.bool),
                             unit(4, 3, 24), torch.ones(4, 3, dtype=torch.bool))
    with torch.no_grad():
        visual = model(*inputs(seed=1)).map(lambda t: t.repeat(20, *([1] * (t.dim() - 1))))
    classes, refine = np.arange(4), np.ones(4, bool)
    before = {n: p.clone() for n, p in model.named_parameters()}

    def run(**fields):
        cfg = TrainConfig(split="x", ttr=True, gzsl_calibration="none", ttr_batch=20, ttr_steps=3, ttr_lr=0.05,
                          **fields)
        return score(model, visual, texts, classes, cfg, refine=refine)

    assert not np.allclose(run(ttr_refine="all"), run(ttr_refine="global"))
    assert np.allclose(run(ttr_refine="all", score_part=0.0, score_temporal=0.0),
                       run(ttr_refine="global", score_part=0.0, score_temporal=0.0), atol=1e-6)
    assert all(torch.equal(p, before[n]) and p.requires_grad for n, p in model.named_parameters())
