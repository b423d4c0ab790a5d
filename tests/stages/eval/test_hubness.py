"""ZSL hubness correction (stages/eval/hubness.py): CSLS against the training clips' embeddings.
Hand-made scores pin the arithmetic; a trained synthetic run pins that metrics, `eval` and the
saved reference agree (mechanics, not accuracy: accuracy is measured by bench/validate_published.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.eval.hubness import (CSLS_K, REFERENCE_FILE, class_hubness, corrected, load_reference,
                                            reference_rows, save_reference)
from posebridge.stages.train.api import Visual
from posebridge.stages.train.config import TrainConfig


def test_class_hubness_is_the_mean_of_each_columns_k_highest_reference_scores():
    ref = np.array([[0.9, 0.1], [0.8, 0.3], [0.7, 0.2], [0.1, 0.0]])
    assert np.allclose(class_hubness(ref, k=2), [0.85, 0.25])
    assert np.allclose(class_hubness(ref, k=99), ref.mean(0))  # k is capped at the reference size
    with pytest.raises(ValueError, match="at least one reference clip"):
        class_hubness(np.zeros((0, 2)))


def test_a_hub_near_the_training_clips_loses_the_clip_it_wins_only_by_being_a_hub():
    # class 0's prototype sits among the training clips (a hub); class 1's does not
    reference = np.array([[0.9, 0.2]] * CSLS_K)
    test = np.array([[0.60, 0.55],   # a class-1 clip the hub takes by 0.05
                     [0.90, 0.20]])  # a clip that is class 0 by a wide margin
    assert test.argmax(1).tolist() == [0, 0]
    out = corrected(test, class_hubness(reference))
    assert out.argmax(1).tolist() == [1, 0]
    # CSLS proper (2 cos - r(x) - r(c)) ranks every row the same way: r(x) is one number per row
    r_x = np.sort(test, 1)[:, -1:]  # any per-row value
    assert ((2 * test - r_x - class_hubness(reference)).argmax(1) == out.argmax(1)).all()


def test_reference_rows_are_every_training_row_up_to_the_limit_else_a_seeded_sorted_draw():
    train = np.arange(10, 30)
    assert reference_rows(train, seed=0, limit=20).tolist() == train.tolist()
    a, b = reference_rows(train, seed=3, limit=8), reference_rows(train, seed=3, limit=8)
    assert len(a) == 8 and a.tolist() == b.tolist() and a.tolist() == sorted(a.tolist())
    assert set(a.tolist()) <= set(train.tolist())


def test_the_saved_reference_comes_back_and_a_missing_one_says_how_to_write_it(tmp_path):
    visual = Visual(torch.randn(5, 8), torch.randn(5, 4, 8), torch.randn(5, 3, 8), None)
    save_reference(tmp_path, visual)
    back = load_reference(tmp_path, torch.device("cpu"))
    assert back.joint_tokens is None and back.global_.dtype == torch.float32
    for a, b in zip(visual[:3], back[:3]):  # stored as float16
        assert torch.allclose(a, b, atol=1e-2)
    with pytest.raises(UserError, match=f"no {REFERENCE_FILE}.*posebridge eval"):
        load_reference(tmp_path / "other", torch.device("cpu"))


def test_a_run_saved_before_a_setting_existed_reads_back_as_it_ran():
    saved = TrainConfig(split="x").to_dict()
    old = {k: v for k, v in saved.items() if k not in ("hubness", "view_align")}
    assert TrainConfig.from_dict(old).hubness == "none" and TrainConfig.from_dict(old).view_align == "none"
    assert TrainConfig.from_dict(saved) == TrainConfig(split="x")  # today's runs: their own values
    assert TrainConfig(split="x").hubness == "csls"
    with pytest.raises(UserError, match="--hubness 'x' is unknown; use one of none, csls"):
        TrainConfig(split="x", hubness="x").validate()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same 1-epoch synthetic run with --hubness csls (the default) and none: training does not
    read the setting, so the two models are the same and only the ZSL scoring differs."""
    from posebridge.pipeline.run import train_splits
    from posebridge.stages.extract.synthetic import write_synthetic_store

    root = tmp_path_factory.mktemp("hubness")
    store = write_synthetic_store(root / "cache", clips_per_class=4)
    runs = {}
    for mode in ("csls", "none"):
        cfg = TrainConfig(split="synthetic_zsl", epochs=1, gzsl_calibration="none", hubness=mode, device="cpu")
        runs[mode] = train_splits(["synthetic_zsl"], base=cfg, cache_dir=root / "cache", store=store,
                                  runs_dir=root / mode)[0].run_dirs[0]
    return root, store, runs


def test_the_zsl_metric_is_the_corrected_argmax_and_eval_and_the_saved_reference_agree(two_runs):
    import json

    from posebridge.pipeline.run import evaluate_run, load_split_data
    from posebridge.stages.eval.embedding import embed
    from posebridge.stages.eval.scoring import class_columns, score
    from posebridge.stages.splits.registry import get_split
    from posebridge.stages.train.api import class_text_tensors, load_trained, partition, to_device
    from posebridge.stages.train.text import class_texts
    from posebridge.stages.train.text_bank import build_text_bank
    from posebridge.stages.train.text_encoders import make_text_encoder

    root, store, runs = two_runs
    assert not (runs["none"] / REFERENCE_FILE).exists()
    csls, plain = (load_trained(runs[m] / "checkpoint.pt") for m in ("csls", "none"))
    for a, b in zip(csls.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)

    cfg, split = csls.config, get_split("synthetic_zsl")
    dataset = load_split_data(split, cfg.num_frames, root / "cache", store, None, {}, None, None, cfg.view_align, False)
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    data = to_device(dataset, cfg.cues, torch.device("cpu"))
    texts = class_text_tensors(build_text_bank(class_texts(split), make_text_encoder(cfg.text_encoder), root / "cache"),
                               torch.device("cpu"))
    unseen = np.array(split.unseen)
    # embedded as compute_metrics embeds them (the test side once, then its unseen rows), so the
    # scores are the metric's to the bit and no near-tie can fall the other way here
    test_side = embed(csls.model, data, parts["test_gzsl"])
    rows = torch.as_tensor(np.searchsorted(parts["test_gzsl"], parts["test_zsl"]))
    raw = score(csls.model, test_side.map(lambda t: t[rows]), texts, unseen, cfg)
    reference = embed(csls.model, data, reference_rows(parts["train"], cfg.seed))
    assert len(reference.global_) == len(parts["train"])  # every training clip (under the 4096 cap)
    hub = class_hubness(score(csls.model, reference, texts, unseen, cfg))
    labels = class_columns(data.labels[parts["test_zsl"]], unseen)
    expected = float((corrected(raw, hub).argmax(1) == labels).mean())  # metrics.json holds fractions
    assert json.loads((runs["csls"] / "metrics.json").read_text())["zsl"]["top1"] == pytest.approx(expected, abs=1e-6)
    assert json.loads((runs["none"] / "metrics.json").read_text())["zsl"]["top1"] == pytest.approx(
        float((raw.argmax(1) == labels).mean()), abs=1e-6)
    # the run folder holds that reference, rounded to float16 for `predict`
    saved = load_reference(runs["csls"], torch.device("cpu"))
    for a, b in zip(reference[:3], saved[:3]):
        torch.testing.assert_close(b, a.half().float())
    # `eval` rebuilds the same reference from the data
    assert evaluate_run(runs["csls"], cache_dir=root / "cache", store=store)["zsl"]["top1"] == pytest.approx(expected, abs=1e-6)
