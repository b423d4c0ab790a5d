"""The cue ablation: none / heatmap / features / all x seeds off one loaded cache, one table and a plot.

Each cell is an ordinary run folder (train_splits); the ablation adds ablation.md (a pasteable
markdown table, mean ± std over seeds) and ablation.png (ZSL top-1 and GZSL H per cue mode).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from posebridge.cache.atomic import atomic_path
from posebridge.stages.eval.metrics import aggregate
from posebridge.stages.eval.report import summarise_runs

CUE_GRID = ("none", "heatmap", "features", "all")
_PLOTTED = (("zsl.top1", "ZSL top-1"), ("gzsl.h", "GZSL H"))


def plot_ablation(path: Path, runs_by_cues: dict[str, list[dict]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(runs_by_cues)
    fig, ax = plt.subplots(figsize=(1.6 * len(modes) + 2.0, 3.6))
    width = 0.8 / len(_PLOTTED)
    for k, (key, label) in enumerate(_PLOTTED):
        stats = [aggregate(runs_by_cues[m]).get(key, {"mean": math.nan, "std": 0.0}) for m in modes]
        means = [100 * s["mean"] for s in stats]
        stds = [100 * s["std"] for s in stats]
        ax.bar(np.arange(len(modes)) + (k - (len(_PLOTTED) - 1) / 2) * width, means, width, yerr=stds,
               capsize=3, label=label)
    ax.set_xticks(range(len(modes)), [f"cues {m}" for m in modes])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_ablation(folder: Path, split: str, run_dirs_by_cues: dict[str, list[Path]]) -> str:
    """ablation.md + ablation.png in `folder`; returns the table."""
    folder.mkdir(parents=True, exist_ok=True)
    table = summarise_runs([d for dirs in run_dirs_by_cues.values() for d in dirs])
    runs = {cues: [json.loads((d / "metrics.json").read_text()) for d in dirs] for cues, dirs in run_dirs_by_cues.items()}
    seeds = max(len(r) for r in runs.values())
    text = f"Cue ablation on {split} ({seeds} seed{'s' if seeds > 1 else ''}, mean ± std)\n\n{table}"
    (folder / "ablation.md").write_text(text)
    plot_ablation(folder / "ablation.png", runs, f"cue ablation, {split}")
    return text
