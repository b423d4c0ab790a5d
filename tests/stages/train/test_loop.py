"""experiment.train() / evaluate() end to end on a tiny random CueDataset (synthetic tensors: mechanics only)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import Split
from posebridge.stages.splits.spec import SIDES_PROTOCOL, SideRule
from posebridge.stages.eval import calibration, evaluate
from posebridge.stages.eval import metrics as M
from posebridge.stages.eval.embedding import embed
from posebridge.stages.eval.scoring import score
from posebridge.pipeline import experiment
from posebridge.stages.train import checkpoint, loop
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset, partition
from posebridge.stages.train.heads import ModelArgs, PoseBridge
from posebridge.stages.train.text_bank import TextBank

K, SEEN, UNSEEN = 8, (0, 1, 2, 3, 5, 6), (4, 7)
PER_CLASS, TRAIN_PER_CLASS = 8, 6
T, V, VC, C, P2, D = 12, 33, 13, 8, 9, 16
RUN_FILES = ("checkpoint.pt", "config.json", "fingerprints.json", "versions.json", "metrics.json", "results.md",
             "confusion.png", "per_class.png")


def tiny_dataset(seed: int = 0) -> CueDataset:
    g = torch.Generator().manual_seed(seed)
    n = K * PER_CLASS
    labels = torch.arange(K).repeat_interleave(PER_CLASS)
    # A class-dependent offset, so there is something to learn; the rest is noise.
    # Two person slots [N, M=2, T, ...]; the second person is there in every other clip only.
    keypoints = torch.randn(n, 2, T, V, 3, generator=g) * 0.3 + labels.float().view(n, 1, 1, 1, 1) / K
    confidence = torch.rand(n, 2, T, V, generator=g)
    confidence[::2, 1] = 0.0
    meta = [{"split": "train" if i % PER_CLASS < TRAIN_PER_CLASS else "test"} for i in range(n)]
    return CueDataset(
        keypoints=keypoints, confidence=confidence,
        features=torch.randn(n, 2, T, VC, C, generator=g), heatmaps=torch.rand(n, 2, T, VC, P2, generator=g),
        labels=labels, clip_ids=[f"clip{i:03d}" for i in range(n)], meta=meta,
        cue_joints=tuple(range(VC)), source_fingerprint="f" * 64)


def tiny_split() -> Split:
    return Split(name="tiny_test_split", dataset="tiny", class_names=tuple(f"class {k}" for k in range(K)),
                 seen=SEEN, unseen=UNSEEN, protocol=SIDES_PROTOCOL, source="tests/stages/train/test_loop.py (random)",
                 train_side=SideRule("names", ("train",), "train"), test_side=SideRule("names", ("test",), "test"))


def tiny_bank(seed: int = 0) -> TextBank:
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    parts_mask = torch.ones(K, 4, dtype=torch.bool)
    parts_mask[0, 1:] = False  # a class with only some part texts
    return TextBank(class_names=[f"class {k}" for k in range(K)], name=unit(K, D), description=unit(K, D),
                    parts=unit(K, 4, D), parts_mask=parts_mask, temporal=unit(K, 3, D),
                    temporal_mask=torch.ones(K, 3, dtype=torch.bool), fingerprint="b" * 64)


def tiny_config(**overrides) -> TrainConfig:
    base = dict(split="tiny_test_split", epochs=2, batch_size=16, dim=32, joint_dim=16, num_frames=T,
                skeleton_pool=1, warmup_epochs=1, val_fraction=0.34, device="cpu")
    return TrainConfig(**{**base, **overrides})


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    metrics = experiment.train(tiny_config(), tiny_dataset(), tiny_split(), tiny_bank(), run_dir)
    return run_dir, metrics


def test_train_writes_every_run_file_and_sane_metrics(trained):
    run_dir, metrics = trained
    for name in RUN_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 2 and config["preset"] == "posebridge" and "preset_sources" in config
    assert metrics["text_encoder"] == config["text_encoder"] and metrics["preset"] == "posebridge"
    fingerprints = json.loads((run_dir / "fingerprints.json").read_text())
    assert fingerprints["data"] == "f" * 64 and fingerprints["text_bank"] == "b" * 64
    assert "| split | cues | text | ZSL top-1 |" in (run_dir / "results.md").read_text()
    assert metrics["epochs"] == 2 and metrics["samples"]["test_zsl"] == len(UNSEEN) * (PER_CLASS - TRAIN_PER_CLASS)
    for value in (metrics["zsl"]["top1"], metrics["gzsl"]["seen"], metrics["gzsl"]["unseen"]):
        assert 0.0 <= value <= 1.0
    assert "top5" not in metrics["zsl"]  # only 2 unseen classes: top-5 would count every sample
    assert set(metrics["calibration"]["pseudo_unseen"]) <= set(SEEN)
    assert json.loads((run_dir / "metrics.json").read_text())["zsl"] == metrics["zsl"]


def test_same_seed_twice_gives_identical_metrics(trained, tmp_path):
    _, first = trained
    again = experiment.train(tiny_config(), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path)
    assert without_timing(again) == without_timing(first)
    other = experiment.train(tiny_config(seed=1), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path / "seed1")
    assert other["train_loss"] != first["train_loss"]


def test_resume_continues_from_the_saved_epoch(trained, tmp_path, monkeypatch):
    _, straight = trained
    real_save = experiment.save_checkpoint

    def crash_after_first_epoch(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt  # the process dies right after epoch 1 was saved

    monkeypatch.setattr(experiment, "save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        experiment.train(tiny_config(), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path)
    assert checkpoint.load_checkpoint(tmp_path / checkpoint.CHECKPOINT)["epoch"] == 1

    saved_epochs = []
    monkeypatch.setattr(experiment, "save_checkpoint", lambda path, payload: (saved_epochs.append(payload["epoch"]),
                                                                         real_save(path, payload)))
    resumed = experiment.train(tiny_config(), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path, resume=True)
    assert saved_epochs == [2, 2]  # epoch 2 only, then the final save with the calibration
    assert without_timing(resumed) == without_timing(straight)


def test_resume_refuses_a_checkpoint_of_another_config(trained, tmp_path):
    run_dir, _ = trained
    (tmp_path / checkpoint.CHECKPOINT).write_bytes((run_dir / checkpoint.CHECKPOINT).read_bytes())
    with pytest.raises(UserError, match="lr"):
        experiment.train(tiny_config(lr=5e-3), tiny_dataset(), tiny_split(), tiny_bank(), tmp_path, resume=True)


def test_evaluate_reproduces_the_training_metrics(trained):
    run_dir, metrics = trained
    again = evaluate.evaluate(run_dir / checkpoint.CHECKPOINT, tiny_dataset(), tiny_split(), tiny_bank())
    for key in ("zsl", "gzsl", "gzsl_uncalibrated"):
        assert again[key] == metrics[key]
    assert again["data_matches_training"]
    with pytest.raises(UserError, match="text bank"):
        evaluate.evaluate(run_dir / checkpoint.CHECKPOINT, tiny_dataset(), tiny_split(),
                      dataclasses.replace(tiny_bank(), fingerprint="c" * 64))


def test_a_run_folders_model_is_rebuilt_in_one_place_for_evaluation_and_prediction(trained, tmp_path):
    from posebridge.pipeline.predict import load_run
    from posebridge.stages.train.trained import load_trained

    run_dir, _ = trained
    model = load_trained(run_dir / checkpoint.CHECKPOINT)
    assert not model.model.training and model.device == torch.device("cpu") and model.config.split == tiny_split().name
    by_predict = load_run(run_dir).model.state_dict()
    assert all(torch.equal(t, by_predict[k]) for k, t in model.model.state_dict().items())
    unfinished = checkpoint.load_checkpoint(run_dir / checkpoint.CHECKPOINT) | {"calibration": None}
    checkpoint.save_checkpoint(tmp_path / checkpoint.CHECKPOINT, unfinished)
    for load in (load_trained, lambda path: evaluate.evaluate(path, tiny_dataset(), tiny_split(), tiny_bank())):
        with pytest.raises(UserError, match=r"unfinished run; finish it with posebridge train --resume"):
            load(tmp_path / checkpoint.CHECKPOINT)


def test_calibration_gamma_ignores_test_labels_and_test_samples():
    cfg, split, bank = tiny_config(epochs=1), tiny_split(), tiny_bank()
    ds = tiny_dataset()
    gammas = []
    for shuffle_seed in (None, 1, 2):
        if shuffle_seed is not None:  # scramble labels and inputs of the test side only
            test = np.flatnonzero([m["split"] == "test" for m in ds.meta])
            perm = np.random.default_rng(shuffle_seed).permutation(test)
            ds.labels[test] = ds.labels[perm].clone()
            ds.keypoints[test] = torch.randn(len(test), 2, T, V, 3)
        parts = partition(ds, split, cfg.val_fraction, cfg.seed)
        data = loop.to_device(ds, cfg.cues, torch.device("cpu"))
        texts = loop.class_text_tensors(bank, torch.device("cpu"))
        args = loop.model_args(cfg, ds, bank)

        def train_auxiliary(train_idx, classes):
            aux = loop.new_fit_state(cfg, args, torch.device("cpu"), cfg.seed + 1)
            loop.fit(aux, cfg, data, train_idx, classes, texts, cfg.epochs)
            return aux.model, data

        info = calibration.calibrate_gamma(cfg, data, parts, split, texts, train_auxiliary)
        assert info["method"] == "pseudo_unseen" and "note" not in info
        gammas.append(info["gamma"])
    assert gammas[0] == gammas[1] == gammas[2]


def test_pseudo_unseen_classes_are_seen_classes_chosen_by_seed():
    split = tiny_split()
    a, b = calibration.pseudo_unseen_classes(split, 0), calibration.pseudo_unseen_classes(split, 0)
    assert np.array_equal(a, b) and len(a) == len(UNSEEN) and set(a) <= set(SEEN)
    assert any(not np.array_equal(a, calibration.pseudo_unseen_classes(split, s)) for s in range(1, 6))


def test_one_epoch_with_the_real_loss_changes_the_weights():
    # the prototype adapter (off by default since the real-data validation) is switched on so the
    # loss is seen to reach every trained part
    cfg, ds, bank = dataclasses.replace(tiny_config(), text_adapter=True), tiny_dataset(), tiny_bank()
    args = loop.model_args(cfg, ds, bank)
    state = loop.new_fit_state(cfg, args, torch.device("cpu"), seed=0)
    before = {n: p.detach().clone() for n, p in state.model.named_parameters()}
    data = loop.to_device(ds, cfg.cues, torch.device("cpu"))
    texts = loop.class_text_tensors(bank, torch.device("cpu"))
    losses = loop.fit(state, cfg, data, np.arange(16), np.array(SEEN), texts, epochs=1)
    assert len(losses) == 1 and np.isfinite(losses[0])
    changed = [n for n, p in state.model.named_parameters() if not torch.equal(p, before[n])]
    assert "backbone.embed.weight" in changed and "adapter.mlp.3.weight" in changed and "logit_scale" in changed


def test_user_errors_for_bad_settings(tmp_path):
    ds, split, bank = tiny_dataset(), tiny_split(), tiny_bank()
    with pytest.raises(UserError, match="--cues"):
        experiment.train(tiny_config(cues="rgb"), ds, split, bank, tmp_path)
    with pytest.raises(UserError, match="num_frames"):
        experiment.train(tiny_config(num_frames=64), ds, split, bank, tmp_path)
    skeleton_only = dataclasses.replace(ds, features=None, heatmaps=None)
    with pytest.raises(UserError, match="--cues none"):
        experiment.train(tiny_config(), skeleton_only, split, bank, tmp_path)


def test_test_time_refinement_moves_only_the_refinable_columns():
    cfg, ds, bank = tiny_config(), tiny_dataset(), tiny_bank()
    state = loop.new_fit_state(cfg, loop.model_args(cfg, ds, bank), torch.device("cpu"), seed=0)
    data = loop.to_device(ds, cfg.cues, torch.device("cpu"))
    texts = loop.class_text_tensors(bank, torch.device("cpu"))
    visual = embed(state.model, data, np.arange(len(ds)))
    classes = np.arange(K)
    plain = score(state.model, visual, texts, classes, cfg)
    refine = classes == plain.argmax(1)[0]  # a class that has at least one member to move toward
    assert np.array_equal(plain, score(state.model, visual, texts, classes, cfg, refine=refine))  # off by default
    refined = score(state.model, visual, texts, classes, dataclasses.replace(cfg, ttr=True, ttr_min_conf=0.0),
                         refine=refine)
    assert np.allclose(refined[:, ~refine], plain[:, ~refine])
    assert not np.allclose(refined[:, refine], plain[:, refine])


def test_learning_rate_warms_up_linearly_then_decays_to_a_tenth():
    assert loop.lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert loop.lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert loop.lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert loop.lr_at(55, 100, 10, 1.0) == pytest.approx(0.55)  # half way through the cosine
    assert loop.lr_at(100, 100, 10, 1.0) == pytest.approx(0.1)


def test_augmented_batches_crop_the_same_frames_for_every_person():
    cfg, ds = tiny_config(), tiny_dataset()  # M = 2 person slots
    data = loop.to_device(ds, cfg.cues, torch.device("cpu"))
    moved = dataclasses.replace(data, keypoints=torch.stack([data.keypoints[:, 0], data.keypoints[:, 0] + 1.0], 1),
                                features=torch.stack([data.features[:, 0], data.features[:, 0]], 1))
    kp, conf, feat, hm, _ = loop.take_batch(moved, torch.arange(4), cfg, torch.Generator().manual_seed(0))
    assert kp.shape == (4, 2, T, V, 3) and hm.shape == (4, 2, T, VC, P2)
    assert torch.equal(feat[:, 0], feat[:, 1])  # the same frames for both persons
    # person 1 is person 0 moved by 1: after the same crop and the same scale s, it is moved by s
    shift = kp[:, 1] - kp[:, 0]
    assert torch.allclose(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-5)


def test_the_crop_blends_frames_like_resample_and_keeps_the_clip_when_it_keeps_everything():
    """Frames of a linear ramp stay on a ramp after the crop (a nearest-frame crop would repeat some,
    giving zero motion there); crop_min = 1 and no scale jitter leave the batch as it is."""
    cfg, ds = tiny_config(crop_min=0.5, scale_jitter=0.0), tiny_dataset()
    ramp = torch.arange(T, dtype=torch.float32).view(1, 1, T, 1, 1).expand(4, 2, T, V, 3).clone()
    data = dataclasses.replace(loop.to_device(ds, cfg.cues, torch.device("cpu")), keypoints=ramp)
    kp, *_ = loop.take_batch(data, torch.arange(4), cfg, torch.Generator().manual_seed(0))
    steps = kp[:, 0, 1:, 0, 0] - kp[:, 0, :-1, 0, 0]  # [B, T-1]: one constant step per clip, never 0
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-5) and (steps > 0).all()
    whole = tiny_config(crop_min=1.0, scale_jitter=0.0)
    kp, conf, *_ = loop.take_batch(data, torch.arange(4), whole, torch.Generator().manual_seed(0))
    assert torch.allclose(kp, ramp[:4]) and torch.allclose(conf, data.confidence[:4])


def test_temperatures_stay_at_or_below_the_cap_and_type_embeddings_get_no_weight_decay():
    cfg, ds, bank = tiny_config(symmetric_loss=True, epochs=1), tiny_dataset(), tiny_bank()
    state = loop.new_fit_state(cfg, loop.model_args(cfg, ds, bank), torch.device("cpu"), 0)
    no_decay = {id(p) for g in state.optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(state.model.token_type) in no_decay and id(state.model.logit_scale) in no_decay
    with torch.no_grad():
        state.model.logit_scale.fill_(10.0)
        state.model.temperatures.fill_(10.0)
    data = loop.to_device(ds, cfg.cues, torch.device("cpu"))
    loop.fit(state, cfg, data, np.arange(16), np.array(SEEN), loop.class_text_tensors(bank, torch.device("cpu")), 1)
    cap = float(torch.tensor(math.log(100)))  # the cap as a float32 parameter holds it
    assert float(state.model.logit_scale.detach()) <= cap and float(state.model.temperatures.detach().max()) <= cap


def test_gzsl_results_do_not_change_when_the_main_models_logit_scale_is_multiplied(trained):
    """Gamma is chosen and applied in cosine units: the main model's learned scale cannot move it."""
    run_dir, metrics = trained
    ckpt = checkpoint.load_checkpoint(run_dir / checkpoint.CHECKPOINT)
    cfg, split, bank = tiny_config(), tiny_split(), tiny_bank()
    model = PoseBridge(ModelArgs(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    parts = partition(tiny_dataset(), split, cfg.val_fraction, cfg.seed)
    data = loop.to_device(tiny_dataset(), cfg.cues, torch.device("cpu"))
    texts = loop.class_text_tensors(bank, torch.device("cpu"))
    assert evaluate.compute_metrics(model, cfg, data, parts, split, texts,
                                    metrics["calibration"]["gamma"])[0]["gzsl"] == metrics["gzsl"]
    # gamma = twice one sample's margin (best seen - best unseen score): that sample's prediction
    # flips between scores and 3 x scores whatever the trained model's margins are, so any
    # dependence on the scale would show.
    both = np.array(sorted(SEEN + UNSEEN))
    seen_mask = np.isin(both, SEEN)
    scores = score(model, embed(model, data, parts["test_gzsl"]), texts, both, cfg)
    margins = scores[:, seen_mask].max(1) - scores[:, ~seen_mask].max(1)
    gamma = float(2 * margins[np.abs(margins).argmax()])
    # In logit units the same gamma would give other predictions:
    assert not np.array_equal(M.calibrated_predictions(3.0 * scores, seen_mask, gamma),
                              M.calibrated_predictions(scores, seen_mask, gamma))
    base, _ = evaluate.compute_metrics(model, cfg, data, parts, split, texts, gamma)
    for factor in (0.25, 3.0):
        with torch.no_grad():
            model.logit_scale.copy_(torch.tensor(1.0 / 0.07 * factor).log())  # below the cap of 100
        assert np.array_equal(score(model, embed(model, data, parts["test_gzsl"]), texts, both, cfg), scores)
        scaled, _ = evaluate.compute_metrics(model, cfg, data, parts, split, texts, gamma)
        assert scaled["gzsl"] == base["gzsl"] and scaled["zsl"] == base["zsl"]


def test_a_ttr_run_is_deterministic_and_marked_transductive(tmp_path):
    cfg = tiny_config(epochs=1, ttr=True, gzsl_calibration="none", ttr_batch=5)
    first = experiment.train(cfg, tiny_dataset(), tiny_split(), tiny_bank(), tmp_path / "a")
    again = experiment.train(cfg, tiny_dataset(), tiny_split(), tiny_bank(), tmp_path / "b")
    assert without_timing(first) == without_timing(again) and first["transductive"] is True
    assert "TTR (transductive)" in (tmp_path / "a" / "results.md").read_text()
    plain = experiment.train(dataclasses.replace(cfg, ttr=False), tiny_dataset(), tiny_split(), tiny_bank(),
                             tmp_path / "c")
    assert plain["transductive"] is False and plain["train_loss"] == first["train_loss"]  # same training


def test_the_learnt_scale_starts_at_the_configured_temperature_and_the_default_start_is_the_models_own():
    cfg, ds, bank = tiny_config(), tiny_dataset(), tiny_bank()
    args = loop.model_args(cfg, ds, bank)
    own = PoseBridge(args).logit_scale.detach().clone()
    assert torch.equal(loop.new_fit_state(cfg, args, torch.device("cpu"), seed=0).model.logit_scale.detach(), own)
    sharp = loop.new_fit_state(dataclasses.replace(cfg, temperature_init=0.03), args, torch.device("cpu"), seed=0)
    assert math.isclose(float(sharp.model.scale()), 1 / 0.03, rel_tol=1e-5)
