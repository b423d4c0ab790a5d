"""`make demo`: both stages on what can be had offline.

Stage 1 runs on real video (the Pose2Sim demo clips). No labelled action videos can be had
offline, so stage 2 trains on the SYNTHETIC benchmark (procedural skeletons and cues in the
cache's schema); it checks the mechanics, not the science. Real numbers need real datasets.
"""
from __future__ import annotations

from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.stages.eval.report import summarise_runs

DEMO_SPLIT = "synthetic_zsl"


def demo_configs(epochs: int | None = None) -> list:
    """The demo's two runs, with cues and without; epochs None: TrainConfig's default."""
    from posebridge.stages.train.config import TrainConfig, config_default
    from posebridge.stages.train.presets import resolve

    return [resolve(TrainConfig, config_default("preset"), dict(epochs=epochs), split=DEMO_SPLIT, cues=cues).validate()
            for cues in ("all", "none")]


def run_demo(videos: Path, *, cache_dir: Path | None = None, runs_dir: Path | None = None,
             epochs: int | None = None) -> list[str]:
    from posebridge.stages import paths
    from posebridge.pipeline.run import train_splits
    from posebridge.stages.extract.run import extract
    from posebridge.stages.extract.synthetic import write_synthetic_store

    if not Path(videos).is_dir():
        raise UserError(f"demo videos not found at {videos}; run `make media` (or `make demo`) first")
    lines = ["== stage 1: extract pose-anchored cues from the demo videos"]
    summary = extract(Path(videos), "demo", cache_dir=cache_dir)
    lines += summary.lines()
    # The SYNTHETIC data set is made like any other (`posebridge synthetic`, as `extract` makes a
    # video set's): generated once, then reused.
    store = write_synthetic_store(paths.cache_root(cache_dir))
    lines.append(f"\n== stage 2: train + evaluate split {DEMO_SPLIT} (SYNTHETIC data), with cues and without")
    run_dirs, groups = [], []
    for base in demo_configs(epochs):
        result = train_splits([DEMO_SPLIT], base=base, cache_dir=cache_dir, store=store, runs_dir=runs_dir)[0]
        run_dirs += result.run_dirs
        groups.append(result.group_dir)
    lines.append("")
    lines.append(summarise_runs(run_dirs))
    lines.append("(synthetic benchmark: unseen classes include pairs that differ only in the object held, which "
                 "exists only in the cues; with --cues none those pairs fall to chance)")
    lines.append(f"cue cache: {summary.store}")
    lines.append(f"synthetic store: {store}")
    lines += [f"run folder: {g}" for g in groups]
    example = sorted(Path(videos).glob("*.mp4"))
    if example:  # the run also scores real clips: the synthetic store has the extractor's layout
        lines.append(f'try: posebridge predict {example[0]} --run {groups[0]} --classes "kick a ball;wave both '
                     f'hands;sit down on a chair"  (mechanics only: these heads know synthetic motions)')
    return lines
