"""`posebridge predict`: a run trained on the SYNTHETIC demo split (as `make demo` leaves it) ranks
free class texts for the real demo clips, extracted through the cache."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from posebridge.cache.errors import UserError
from posebridge.pipeline.predict import parse_classes, predict, rank, read_classes_file
from posebridge.stages.train.config import TrainConfig
from posebridge.pipeline.run import train_splits
from posebridge.stages.eval.hubness import REFERENCE_FILE

CLASSES = "kick a ball;wave both hands;sit down on a chair"
FRAMES = 8  # --max-frames: short clips keep the test fast


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A finished run of the demo's split, on a smaller copy of the demo's synthetic store (same
    generator, same layout; 1 epoch: the mechanics, not accuracy)."""
    from posebridge.stages.extract.synthetic import write_synthetic_store

    root = tmp_path_factory.mktemp("predict")
    store = write_synthetic_store(root / "cache", clips_per_class=4)
    cfg = TrainConfig(split="synthetic_zsl", epochs=1, gzsl_calibration="none")
    result = train_splits(["synthetic_zsl"], base=cfg, cache_dir=root / "cache", store=store,
                          runs_dir=root / "runs")[0]
    return root, result.run_dirs[0]


@pytest.fixture
def clip(tmp_path, demo_videos):
    out = tmp_path / "my clip.mp4"
    shutil.copy(demo_videos[0], out)
    return out


def test_ranks_free_texts_and_a_second_call_runs_no_pose_model(demo_run, clip, models_dir):
    root, run_dir = demo_run
    classes = parse_classes(CLASSES)
    first = predict([clip], run_dir, classes, top_k=3, cache_dir=root / "cache", models_dir=models_dir,
                    max_frames=FRAMES)
    assert first.stage1["extracted"] == 1 and first.stage1["model_calls"] > 0
    [result] = first.clips
    assert result.frames == FRAMES and result.person_frames > 0
    ranking = result.ranking
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    assert sorted(r["class"] for r in ranking) == sorted(c.name for c in classes)
    assert all(a["score"] >= b["score"] for a, b in zip(ranking, ranking[1:]))
    # All three classes are shown, so the softmax probabilities are complete.
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0, abs=1e-5)

    moved = clip.rename(clip.with_name("renamed.mp4"))  # same bytes, another name: the same clip
    second = predict([moved, moved], run_dir, classes, top_k=3, cache_dir=root / "cache", models_dir=models_dir,
                     max_frames=FRAMES)
    assert second.stage1 == {**first.stage1, "extracted": 0, "cached": 1, "model_calls": 0}
    assert [c.video for c in second.clips] == [str(moved)] * 2  # one row per video given
    for again in second.clips:
        for a, b in zip(ranking, again.ranking):
            assert a["class"] == b["class"] and a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_a_description_changes_the_class_prototype(demo_run, clip, models_dir, tmp_path):
    """--classes-file: the text after the tab is the class's description, so it enters the scores."""
    root, run_dir = demo_run
    plain = tmp_path / "plain.txt"
    plain.write_text("kick a ball\nwave both hands\n")
    described = tmp_path / "described.txt"
    described.write_text("# comment\nkick a ball\tone leg swings forward and strikes a ball\n\nwave both hands\n")
    assert [c.description for c in read_classes_file(described)] == ["one leg swings forward and strikes a ball", None]
    scores = []
    for path in (plain, described):
        out = predict([clip], run_dir, read_classes_file(path), top_k=2, cache_dir=root / "cache",
                      models_dir=models_dir, max_frames=FRAMES)
        scores.append({r["class"]: r["score"] for r in out.clips[0].ranking})
    assert scores[0]["wave both hands"] == pytest.approx(scores[1]["wave both hands"], abs=1e-5)
    assert abs(scores[0]["kick a ball"] - scores[1]["kick a ball"]) > 1e-3


def test_a_run_whose_cue_layout_differs_fails_before_any_pose_work(demo_run, clip, models_dir):
    root, run_dir = demo_run
    before = sorted((root / "cache").rglob("zarr.json"))
    with pytest.raises(UserError) as err:
        predict([clip], run_dir, parse_classes(CLASSES), cache_dir=root / "cache", models_dir=models_dir,
                levels=("fpn64",), max_frames=FRAMES)
    message = str(err.value)
    assert "\n" not in message
    assert "levels fpn64,fpn16, 96 channels" in message and "levels fpn64, 48 channels" in message
    assert sorted((root / "cache").rglob("zarr.json")) == before  # no store was made for it


def test_rank_orders_by_score_and_keeps_ties_in_class_order():
    names = ["a", "b", "c", "d"]
    out = rank(np.array([[1.0, 3.0, 3.0, -2.0]]), names, top_k=3)[0]
    assert [r["class"] for r in out] == ["b", "c", "a"]
    p = np.exp([1.0, 3.0, 3.0, -2.0]) / np.exp([1.0, 3.0, 3.0, -2.0]).sum()
    assert [r["probability"] for r in out] == pytest.approx([p[1], p[2], p[0]], abs=1e-6)


@pytest.mark.parametrize("text, expected", [
    ("jump", "at least 2"), ("jump;Jump", "given twice"), ("jump; ;", "at least 2"),
])
def test_bad_class_lists_are_one_line_errors(text, expected):
    with pytest.raises(UserError, match=expected):
        parse_classes(text)


def _cli(*args, cache):
    env = {**os.environ, "POSEBRIDGE_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_prints_json_and_the_table_shows_the_same_ranking(demo_run, clip):
    """One CLI call (each loads torch and the text encoder): --json on stdout and nothing else; the
    table (the default output) is rendered from the same result."""
    from posebridge.pipeline.predict import ClipPrediction, Prediction

    root, run_dir = demo_run
    as_json = _cli("predict", clip, "--run", run_dir.parent, "--classes", CLASSES, "--top-k", "2", "--json",
                   "--max-frames", FRAMES, cache=root / "cache")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["run"] == str(run_dir)  # the seed-* parent resolved to its run folder
    [clip_out] = data["clips"]
    assert clip_out["video"] == str(clip) and len(clip_out["ranking"]) == 2
    table = Prediction(**{**data, "clips": [ClipPrediction(**c) for c in data["clips"]]}).table()
    assert str(clip) in table and "rank" in table
    for row in clip_out["ranking"]:
        assert any(line.split()[:1] == [str(row["rank"])] and row["class"] in line
                   and f"{row['probability']:.3f}" in line for line in table.splitlines())


@pytest.mark.parametrize("args, expected", [
    (["--classes", "a;b", "--classes-file", "x.txt"], "either as --classes"),
    ([], "either as --classes"),
    (["--classes", "a;b", "--top-k", "0"], "--top-k"),
])
def test_cli_mistakes_are_one_line(demo_run, clip, args, expected):
    root, run_dir = demo_run
    out = _cli("predict", clip, "--run", run_dir, *args, cache=root / "cache")
    assert out.returncode == 1
    lines = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("INFO:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], out.stderr


def test_a_shiftgcn_run_predicts_with_the_encoder_it_carries(demo_run, clip, models_dir, tmp_path):
    """The frozen Shift-GCN is stored in the run's checkpoint: predict encodes new clips with it, and
    gives the same scores after the encoder cache is gone (a run folder shared without its cache)."""
    import torch

    from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint
    from posebridge.stages.train.encoders.frozen import encoder_from_record

    root, _ = demo_run
    store = next((root / "cache" / "synthetic").iterdir())
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)  # the demo store and text bank, not the encoder
    cfg = TrainConfig(split="synthetic_zsl", epochs=1, gzsl_calibration="none", cues="none",
                      skeleton_encoder="shiftgcn", shiftgcn_width=4, shiftgcn_epochs=1)
    run_dir = train_splits(["synthetic_zsl"], base=cfg, cache_dir=cache, store=store,
                           runs_dir=tmp_path / "runs")[0].run_dirs[0]
    (encoder_dir,) = (cache / "encoders").iterdir()
    record = load_checkpoint(run_dir / CHECKPOINT)["skeleton_encoder"]
    assert record["fingerprint"].startswith(encoder_dir.name.split("-")[1]) and record["num_joints"] == 33
    model, steps = encoder_from_record(record, torch.device("cpu"))
    cached = torch.load(encoder_dir / "weights.pt", weights_only=True)
    assert steps == 3 and all(torch.equal(v, model.state_dict()[k]) for k, v in cached.items())

    classes = parse_classes(CLASSES)
    first = predict([clip], run_dir, classes, top_k=3, cache_dir=cache, models_dir=models_dir, max_frames=FRAMES)
    shutil.rmtree(cache / "encoders")
    second = predict([clip], run_dir, classes, top_k=3, cache_dir=cache, models_dir=models_dir, max_frames=FRAMES)
    assert second.stage1["model_calls"] == 0 and not (cache / "encoders").exists()
    assert [r["class"] for r in first.clips[0].ranking] == [r["class"] for r in second.clips[0].ranking]
    assert [r["score"] for r in first.clips[0].ranking] == pytest.approx(
        [r["score"] for r in second.clips[0].ranking], abs=1e-5)


def test_runs_that_cannot_encode_clips_say_why(demo_run, tmp_path):
    """A run trained on a feature folder has no encoder for clips; an older shiftgcn run did not
    store its encoder."""
    from posebridge.pipeline.predict import load_run
    from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint

    _, run_dir = demo_run
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    for name, change, expected in (
            ("folder", {"fingerprints": {**ckpt["fingerprints"], "feature_folder": True}}, "trained on a feature folder"),
            ("older", {"config": {**ckpt["config"], "skeleton_encoder": "shiftgcn"}, "skeleton_encoder": None},
             "predates storing the encoder; train it again")):
        save_checkpoint(tmp_path / name / CHECKPOINT, {**ckpt, **change})
        with pytest.raises(UserError, match=expected):
            load_run(tmp_path / name)


def test_predict_prepares_clips_with_the_runs_view_align(demo_run, tmp_path, capfd):
    """New clips go through the run's own --view-align; a store's clips are never turned (their z is
    BlazePose's estimate), so the scores are the same, and a line on stderr (not stdout: --json)
    says so where the mode was chosen; the default mode passes over them without a word."""
    from posebridge.cache.store import CueStore
    from posebridge.pipeline.predict import load_run, score_clips
    from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint

    root, run_dir = demo_run
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    assert ckpt["config"]["view_align"] == "mean" and "view_align" not in ckpt["config"]["given"]  # the default
    save_checkpoint(tmp_path / "first" / CHECKPOINT, {**ckpt, "config": {**ckpt["config"], "view_align": "first"}})
    shutil.copy(run_dir / REFERENCE_FILE, tmp_path / "first" / REFERENCE_FILE)  # the run's hubness reference
    store = next((root / "cache" / "synthetic").iterdir())
    clip_ids = [r.clip_id for r in CueStore.open(store).clips()[:3]]
    classes = parse_classes(CLASSES)
    capfd.readouterr()
    plain = score_clips(load_run(run_dir), store, clip_ids, classes, root / "cache")
    assert capfd.readouterr().err == ""
    aligned_run = load_run(tmp_path / "first")
    assert aligned_run.config.view_align == "first"
    scores = score_clips(aligned_run, store, clip_ids, classes, root / "cache")
    seen = capfd.readouterr()
    assert "view-align first does not apply to the new clips: a cue store's z" in seen.err and seen.out == ""
    np.testing.assert_array_equal(scores, plain)


def test_predict_ranks_with_the_runs_hubness_correction_and_says_when_its_reference_is_gone(demo_run, tmp_path):
    """The default run (--hubness csls) lowers each class by one amount for every clip (its CSLS
    hubness over the run's training clips), so its scores minus the plain ones are the same in
    every row; a run folder without its saved reference is a one-line error naming the fix."""
    from posebridge.cache.store import CueStore
    from posebridge.pipeline.predict import load_run, score_clips
    from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint

    root, run_dir = demo_run
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    assert ckpt["config"]["hubness"] == "csls" and (run_dir / REFERENCE_FILE).is_file()
    save_checkpoint(tmp_path / "plain" / CHECKPOINT, {**ckpt, "config": {**ckpt["config"], "hubness": "none"}})
    store = next((root / "cache" / "synthetic").iterdir())
    clip_ids = [r.clip_id for r in CueStore.open(store).clips()[:4]]
    classes = parse_classes(CLASSES)
    corrected = score_clips(load_run(run_dir), store, clip_ids, classes, root / "cache")
    plain = score_clips(load_run(tmp_path / "plain"), store, clip_ids, classes, root / "cache")
    shift = corrected - plain
    assert np.abs(shift).max() > 1e-3  # the correction is there
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4)
    save_checkpoint(tmp_path / "lost" / CHECKPOINT, ckpt)
    with pytest.raises(UserError, match=f"has no {REFERENCE_FILE}; evaluate it again"):
        score_clips(load_run(tmp_path / "lost"), store, clip_ids, classes, root / "cache")
