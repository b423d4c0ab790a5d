"""Run-folder files and the markdown tables."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posebridge.cache.errors import UserError
from posebridge.stages.eval.report import TABLE_HEADER, results_table, summarise_runs, write_run_report, TRANSDUCTIVE_NOTE

NAMES = ["wave hand", "kick leg", "nod head"]


def metrics(split: str, cues: str, seed: int, top1: float, h: float) -> dict:
    return {"split": split, "cues": cues, "seed": seed, "epochs": 3,
            "zsl": {"top1": top1, "top5": 1.0}, "gzsl": {"seen": 0.8, "unseen": 0.4, "h": h, "gamma": 0.5},
            "calibration": {"method": "pseudo_unseen", "gamma": 0.5}}


def write(run_dir, m: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    details = {"unseen_names": NAMES, "confusion": np.array([[2, 1, 0], [0, 3, 0], [1, 0, 2]]),
               "per_class": np.array([2 / 3, 1.0, 2 / 3])}
    write_run_report(run_dir, {"split": m["split"], "cues": m["cues"], "seed": m["seed"]},
                     {"data": "d" * 64, "text_bank": "t" * 64}, m, details)


def test_run_report_writes_every_file(tmp_path):
    write(tmp_path, {**metrics("ntu60_55_5", "all", 0, 0.625, 0.5), "split_assumption": "only a test"})
    for name in ("config.json", "fingerprints.json", "versions.json", "metrics.json", "results.md",
                 "confusion.png", "per_class.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    versions = json.loads((tmp_path / "versions.json").read_text())
    assert set(versions) >= {"python", "torch", "numpy", "zarr", "transformers", "posebridge"}
    results = (tmp_path / "results.md").read_text()
    assert results.startswith(TABLE_HEADER)
    assert "| ntu60_55_5 | all | ? | 62.5 | 100.0 | 80.0 | 40.0 | 50.0 | 1 |" in results
    assert "only a test" in results


def test_summary_averages_seeds_and_keeps_cue_modes_apart(tmp_path):
    dirs = []
    for i, (cues, seed, top1) in enumerate([("all", 0, 0.5), ("all", 1, 0.7), ("none", 0, 0.4)]):
        dirs.append(tmp_path / f"run{i}")
        write(dirs[-1], metrics("synthetic_zsl", cues, seed, top1, 0.5))
    table = summarise_runs(dirs)
    lines = table.strip().splitlines()
    assert lines[0] == TABLE_HEADER and len(lines) == 4
    assert "| synthetic_zsl | all | ? | 60.0 ± 14.1 |" in table and lines[2].endswith("| 2 |")
    assert "| synthetic_zsl | none | ? | 40.0 |" in table


def test_missing_values_show_a_dash_and_unfinished_runs_are_named(tmp_path):
    table = results_table([("x", "none", [{"zsl": {"top1": 0.5}}])])
    assert "| x | none | ? | 50.0 | – |" in table
    with pytest.raises(UserError, match="metrics.json"):
        summarise_runs([tmp_path])


def test_transductive_runs_are_kept_apart_and_marked_in_every_table(tmp_path):
    inductive, transductive = tmp_path / "a", tmp_path / "b"
    write(inductive, metrics("ntu60_55_5", "all", 0, 0.5, 0.5))
    write(transductive, {**metrics("ntu60_55_5", "all", 0, 0.7, 0.5), "transductive": True})
    assert "TRANSDUCTIVE" not in (inductive / "results.md").read_text()
    own = (transductive / "results.md").read_text()
    assert "| ntu60_55_5 | all, TTR (transductive) | ? | 70.0 |" in own and TRANSDUCTIVE_NOTE in own
    table = summarise_runs([inductive, transductive])
    assert "| ntu60_55_5 | all | ? | 50.0 |" in table and "| ntu60_55_5 | all, TTR (transductive) | ? | 70.0 |" in table
    assert TRANSDUCTIVE_NOTE in table


def test_pca_2d_recovers_a_planar_cloud_and_is_sign_stable():
    """Points on a plane in 8-D: two axes explain all the variance, distances survive the projection,
    and the same data (shifted) gives the same coordinates, signs included."""
    from posebridge.stages.eval.report import pca_2d

    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(8, 2)))[0]  # orthonormal [8, 2]
    flat = rng.normal(size=(50, 2)) * np.array([3.0, 1.0])
    coords, explained = pca_2d(flat @ plane.T + 5.0)
    assert explained.sum() == pytest.approx(1.0, abs=1e-9)
    assert explained[0] > explained[1]
    d_in = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    d_out = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-9)
    again, _ = pca_2d(flat @ plane.T - 2.0)
    np.testing.assert_allclose(again, coords, atol=1e-9)


def test_run_report_draws_the_embedding_plot_next_to_the_confusion(tmp_path):
    rng = np.random.default_rng(1)
    m = metrics("ntu60_55_5", "all", 0, 0.5, 0.5)
    details = {"unseen_names": NAMES, "confusion": np.eye(3, dtype=int), "per_class": np.ones(3),
               "embedding": {"points": rng.normal(size=(30, 16)), "labels": np.arange(30) % 5,
                             "prototypes": rng.normal(size=(5, 16)), "names": ["a", "b", *NAMES],
                             "seen": np.array([True, True, False, False, False])}}
    write_run_report(tmp_path, {"split": m["split"]}, {"data": "d" * 64}, m, details)
    assert (tmp_path / "embedding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![embedding](embedding.png)" in (tmp_path / "results.md").read_text()


def test_runs_with_other_settings_are_not_averaged_and_name_their_settings_folder(tmp_path):
    dirs = []
    for folder, epochs, top1 in (("cues-all-aaaa", 3, 0.5), ("cues-all-bbbb", 30, 0.9)):
        run = tmp_path / folder / "seed-0"
        write(run, metrics("synthetic_zsl", "all", 0, top1, 0.5))
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "epochs": epochs}))
        dirs.append(run)
    table = summarise_runs(dirs)
    assert "| synthetic_zsl | all [cues-all-aaaa] | ? | 50.0 |" in table
    assert "| synthetic_zsl | all [cues-all-bbbb] | 90.0 |" not in table
    assert "| synthetic_zsl | all [cues-all-bbbb] | ? | 90.0 |" in table


def test_text_encoder_is_named_in_tables_and_minilm_on_a_published_split_gets_the_clip_note(tmp_path):
    from posebridge.stages.eval.report import MINILM_NOTE

    run = tmp_path / "ntu"
    m = {**metrics("ntu60_55_5", "all", 0, 0.5, 0.5), "published_text_encoder": "CLIP ViT-B/32"}
    write_run_report(run, {"split": m["split"], "cues": "all", "text_encoder": "minilm"}, {"data": "d" * 64}, m,
                     {"unseen_names": NAMES, "confusion": np.eye(3, dtype=int), "per_class": np.ones(3)})
    results = (run / "results.md").read_text()
    assert "| ntu60_55_5 | all | minilm | 50.0 |" in results
    assert MINILM_NOTE in results and "CLIP ViT-B/32" in MINILM_NOTE and "--text-encoder clip:DIR" in MINILM_NOTE
    assert MINILM_NOTE in summarise_runs([run])  # read from config.json when metrics.json lacks it
    clip = results_table([("ntu60_55_5", "all", [{"text_encoder": "clip:openai/clip-vit-base-patch32",
                                                  "published_text_encoder": "CLIP ViT-B/32", "zsl": {"top1": 0.5}}])])
    assert "| clip:openai/clip-vit-base-patch32 |" in clip and MINILM_NOTE not in clip
    synthetic = results_table([("synthetic_zsl", "all", [{"text_encoder": "minilm", "zsl": {"top1": 0.5}}])])
    assert MINILM_NOTE not in synthetic  # no published numbers to compare with


def test_run_folder_name_starts_with_the_text_encoder():
    from posebridge.stages.train.config import TrainConfig
    from posebridge.pipeline.run import run_name

    assert run_name(TrainConfig(split="x"), "d").startswith("minilm-cues-all-")
    clip = TrainConfig(split="x", text_encoder="clip:openai/clip-vit-base-patch32")
    assert run_name(clip, "d").startswith("clip-vit-base-patch32-cues-all-")
    assert run_name(TrainConfig(split="x", text_encoder="clip:/models/my b32/"), "d").startswith("clip-my-b32-cues-")


def test_every_table_says_what_is_assumed_about_the_split_and_where_its_class_list_comes_from(tmp_path):
    """A Kinetics-200 run's class list is the best reading, not PURLS's statement: the run's table,
    the seed-averaged table and a split file's summary all say so."""
    from posebridge.stages.eval.summary import summarise_partitions

    m = {**metrics("kinetics200_180_20", "none", 0, 0.5, 0.5), "split_class_list": "first 200 of K400 (best reading)",
         "split_assumption": "PURLS does not publish it"}
    write(tmp_path / "run", m)
    for table in ((tmp_path / "run" / "results.md").read_text(), summarise_runs([tmp_path / "run"]),
                  summarise_partitions("kinetics200_180_20", [tmp_path / "run"], 1, 1).table):
        assert "kinetics200_180_20: class list: first 200 of K400 (best reading)" in table
        assert "ASSUMPTION (kinetics200_180_20): PURLS does not publish it" in table


def test_a_zsl_only_row_shows_n_a_and_the_reason_instead_of_gzsl_numbers(tmp_path):
    from posebridge.stages.eval.summary import summarise_partitions

    reason = "GZSL not available: the train and test sides of x share 9 clips"
    m = {**metrics("x", "none", 0, 0.5, 0.5), "gzsl": {"available": False, "reason": reason, "samples": 4},
         "zsl": {"top1": 0.5, "top5": 1.0, "samples": 4}}
    write(tmp_path / "run", m)
    table = summarise_runs([tmp_path / "run"])
    assert "| x | none | ? | 50.0 | 100.0 | n/a | n/a | n/a | 1 |" in table and f"x: {reason}" in table
    summary = summarise_partitions("x", [tmp_path / "run"], 1, 1)
    assert "| x | none | 1 x 1 | 50.0 ± 0.0 | n/a | n/a | n/a |" in summary.table and reason in summary.table
    assert "nan" not in table.lower() and "nan" not in summary.table.lower()


@pytest.mark.parametrize("names", [["pick up with one hand", "carry"], ["a", "b", "c"],
                                   [f"class number {i} with a long name" for i in range(12)]])
def test_the_confusion_plots_title_lies_inside_the_figure(names):
    """A 2-class confusion (NW-UCLA 8/2) is a small figure beside long tick labels: its title is
    wrapped to fit, never cut off at the right edge."""
    import matplotlib.pyplot as plt

    from posebridge.stages.eval.report import confusion_figure

    fig = confusion_figure(np.eye(len(names), dtype=int), names)
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0 and box.y1 <= fig.bbox.height
    assert fig.axes[0].title.get_text().replace("\n", " ") == "ZSL confusion (unseen classes, row-normalised)"
    plt.close(fig)
