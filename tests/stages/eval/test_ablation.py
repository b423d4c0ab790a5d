"""`posebridge ablate`: the cue grid off one loaded cache (a small SYNTHETIC store), one table and a plot."""
from __future__ import annotations

from posebridge.pipeline import run as run_module
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.extract.synthetic import write_synthetic_store


def test_ablation_trains_every_cue_mode_off_one_load_and_writes_one_table_and_a_plot(tmp_path, monkeypatch):
    store = write_synthetic_store(tmp_path / "cache", clips_per_class=3)
    loads = []
    real_load_view = run_module.load_view
    monkeypatch.setattr(run_module, "load_view", lambda *a: loads.append(a) or real_load_view(*a))
    base = TrainConfig(split="synthetic_zsl", epochs=1, batch_size=32, dim=32, joint_dim=16, device="cpu",
                       gzsl_calibration="none")
    folder, table = run_module.ablate_cues("synthetic_zsl", base=base, seeds=1, store=store,
                                           cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs")
    assert len(loads) == 1  # one cache load for the 4 modes
    rows = [line for line in table.splitlines() if line.startswith("| synthetic_zsl |")]
    assert [row.split("|")[2].strip() for row in rows] == ["none", "heatmap", "features", "all"]
    assert all(row.endswith("| 1 |") for row in rows)
    assert (folder / "ablation.md").read_text() == table
    assert (folder / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(1 seed, mean ± std)" in table
