"""Stage 2 end to end: split -> cue cache (or PYSKL pickle) -> text bank -> heads -> metrics.

Several splits of one dataset share one loaded cache; each (split, settings) gets a run folder
per seed plus a results table averaged over seeds.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posebridge.stages import paths
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import fingerprint
from posebridge.cache.layouts import Skeleton, layout_from_dict, load_layout
from posebridge.stages.splits.registry import get_split, get_split_spec
from posebridge.stages.splits.spec import Split, SplitSpec
from posebridge.stages.splits.split_file import read_split_file
from posebridge.stages.eval.evaluate import evaluate
from posebridge.stages.eval.report import summarise_runs
from posebridge.stages.eval.summary import SplitSummary, summarise_partitions, write_summary
from posebridge.stages.train.config import UNNAMED_AT, TrainConfig
from posebridge.stages.train.data import CueDataset, check_labels, load_pyskl
from posebridge.stages.train.encoders import resolve_encoder
from posebridge.pipeline.experiment import train
from posebridge.pipeline.stores import find_store
from posebridge.stages.train.feature_folder import load_feature_folder
from posebridge.stages.train.loop import check_folder_cues
from posebridge.stages.train.sides import split_sides
from posebridge.stages.train.skeletons import check_split_skeleton, split_layout
from posebridge.stages.train.text import class_texts
from posebridge.stages.train.text_bank import build_text_bank
from posebridge.stages.train.text_encoders import make_text_encoder
from posebridge.stages.train.view import load_view
from posebridge.stages.train.view_align import align_views, chosen


@dataclass
class SplitResult:
    split: str
    group_dir: Path  # holds seed-*/ run folders and the seed-averaged results.md
    run_dirs: list[Path]
    table: str


@dataclass
class SplitFileResult:
    """Every partition x seed of one split file, and their summary (numbers and markdown)."""
    name: str
    results: list[SplitResult]  # one per partition
    summary: SplitSummary


def relabel_to_split(dataset: CueDataset, split: Split) -> CueDataset:
    """Data whose labels index another class list than the split's (Split.data_classes: Kinetics-200
    inside Kinetics-400 data) relabelled to the split's classes by name; clips of other classes are
    left out. The result is other data: its fingerprint says which class list it was cut to."""
    if split.data_classes is None:
        return dataset
    wanted = {name.lower(): i for i, name in enumerate(split.class_names)}
    labels = dataset.labels.numpy()
    names = [str(m.get("label_name") or (split.data_classes[k] if 0 <= k < len(split.data_classes) else ""))
             for m, k in zip(dataset.meta, labels)]  # a store names its labels; a pickle's index data_classes
    new = np.array([wanted.get(n.lower(), -1) for n in names])
    keep = np.flatnonzero(new >= 0)
    if len(keep) == 0:
        raise UserError(f"none of the {len(dataset)} clips is labelled with a class of {split.name}; was the data "
                        f"extracted with its class names (--annotations, class folders) or labelled by "
                        f"{len(split.data_classes)}-class indices?")
    relabelled = dataset.subset(keep)
    relabelled.labels = relabelled.labels.new_tensor(new[keep])
    relabelled.source_fingerprint = fingerprint([dataset.source_fingerprint, list(split.class_names)])
    return relabelled


def load_split_data(split: Split, num_frames: int, cache_dir: Path | None, store: Path | None,
                    pyskl: Path | None, loaded: dict, features: Path | None = None,
                    layout: Skeleton | None = None, view_align: str = "none", chosen_align: bool = True
                    ) -> CueDataset:
    """`layout`: the skeleton a PYSKL pickle follows (None: the built-in with its joint count);
    `view_align`: TrainConfig.view_align, applied after loading (stages/train/view_align.py);
    `chosen_align`: whether it was chosen rather than the default (only then a line where it does not apply)."""
    if features is not None:  # a feature folder serves the one split its encoder was trained for
        key = ("features", str(features), len(split.class_names), view_align)
        if key not in loaded:
            loaded[key] = align_views(load_feature_folder(features, num_classes=len(split.class_names)), view_align,
                                      str(features), say_not_applicable=chosen_align)
        return loaded[key]
    # the layout's whole file form: two layouts that differ only in `across` align differently
    key = (("pyskl", str(pyskl), layout and fingerprint(layout.to_dict())) if pyskl
           else ("store", str(find_store(split, cache_dir, store)))) + (view_align,)
    if key not in loaded:  # a store is read through its training view: written once, then reused
        data = load_pyskl(pyskl, num_frames, layout) if pyskl else load_view(key[1], num_frames)
        loaded[key] = align_views(data, view_align, Path(key[1]).name, say_not_applicable=chosen_align)
    return relabel_to_split(loaded[key], split)


def for_features(cfg: TrainConfig, dataset: CueDataset) -> TrainConfig:
    """Precomputed features are pooled already: T' steps as they are, no crop or scale augmentation;
    cue tokens, if the folder has them, keep its own number of steps."""
    if dataset.joint_features is None:
        return cfg
    steps = cfg.cue_steps if dataset.cue_tokens is None else int(dataset.cue_tokens.shape[1])  # the folder's
    return dataclasses.replace(cfg, num_frames=int(dataset.joint_features.shape[2]), crop_min=1.0, scale_jitter=0.0,
                               cue_steps=steps)


def text_encoder_slug(spec: str) -> str:
    """The text encoder in a folder name: minilm, clip-vit-base-patch32 (a hub id's last part or a
    folder's name), file-name safe."""
    name = spec.split(":", 1)[1].rstrip("/").split("/")[-1] if ":" in spec else spec
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "text"
    return slug if spec == "minilm" or slug.lower().startswith("clip") else f"clip-{slug}"


def run_name(cfg: TrainConfig, data_fingerprint: str) -> str:
    """Folder name: readable prefix (text encoder, cues) + hash of the data source and every setting
    except the seed, so runs on another cache or pickle never overwrite these."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in ("seed", "device", "given") and not (k in UNNAMED_AT and v == UNNAMED_AT[k])}
    return f"{text_encoder_slug(cfg.text_encoder)}-cues-{cfg.cues}-{fingerprint([settings, data_fingerprint])[:8]}"


def _check_sources(base: TrainConfig, store: Path | None, pyskl: Path | None, features: Path | None) -> None:
    if pyskl is not None and base.cues != "none":
        raise UserError(f"a PYSKL pickle has skeletons only; add --cues none to train from {pyskl}")
    if features is not None and (pyskl is not None or store is not None):
        raise UserError("give one data source: --features, --pyskl or --store")


def train_splits(split_names: list[str], *, base: TrainConfig, seeds: int = 1, cache_dir: Path | None = None,
                 store: Path | None = None, pyskl: Path | None = None, runs_dir: Path | None = None,
                 kinetics200_classes: Path | None = None, resume: bool = False, features: Path | None = None,
                 loaded: dict | None = None, layout: str | Path | None = None) -> list[SplitResult]:
    """Train and evaluate every published split x seed; `loaded` (data already loaded, by source) may
    be shared between calls so that one process loads a cache once. `layout` (a layout name or .json
    file, docs/layouts.md) is the skeleton of the --pyskl pickle, else the split's "skeleton"."""
    _check_sources(base, store, pyskl, features)
    # resolve all first: a typo, a split without data or a missing cache fails before any training
    specs = [get_split_spec(n, kinetics200_classes=kinetics200_classes) for n in split_names]
    for spec in specs:
        check_reachable(spec)
        if store is None and pyskl is None and features is None:
            find_store(spec.split(0), cache_dir)
    encoder = make_text_encoder(base.text_encoder)
    loaded = {} if loaded is None else loaded
    results = []
    for spec in specs:
        sources = dict(cache_dir=cache_dir, store=store, pyskl=pyskl, features=features,
                       layout=pyskl_layout(layout, pyskl, spec))
        results += _train_spec(spec, base, seeds, runs_dir, resume, encoder, loaded, sources)
    return results


def check_reachable(spec: SplitSpec | Split) -> None:
    """A split whose data cannot be had (its `no_data`) is refused before anything is read or written."""
    if spec.no_data:
        raise UserError(f"split {spec.name} has no reachable data: {spec.no_data}; pick another split "
                        f"(`posebridge splits` lists them)")


def train_split_file(split_file: Path | str | SplitSpec, *, base: TrainConfig, seeds: int = 1,
                     cache_dir: Path | None = None, store: Path | None = None, pyskl: Path | None = None,
                     features: Path | None = None, runs_dir: Path | None = None, resume: bool = False,
                     loaded: dict | None = None, layout: str | Path | None = None) -> SplitFileResult:
    """Train and evaluate every partition x seed of a split file (or an already read SplitSpec);
    one run folder each, <runs>/<name>[/p<k>-<digest>]/<settings>/seed-<n>, and one summary row
    (mean ± std over partitions x seeds), returned and written to <runs>/<name>/summary-<settings>.md.
    A --pyskl pickle is read with `layout`, else with the split file's "skeleton"."""
    _check_sources(base, store, pyskl, features)
    spec = split_file if isinstance(split_file, SplitSpec) else read_split_file(split_file)
    check_reachable(spec)
    loaded = {} if loaded is None else loaded
    sources = dict(cache_dir=cache_dir, store=store, pyskl=pyskl, features=features,
                   layout=pyskl_layout(layout, pyskl, spec))
    results = _train_spec(spec, base, seeds, runs_dir, resume, make_text_encoder(base.text_encoder), loaded, sources)
    run_dirs = [d for r in results for d in r.run_dirs]
    summary = summarise_partitions(spec.name, run_dirs, partitions=len(spec.partitions), seeds=seeds)
    settings = run_name(dataclasses.replace(base, split=spec.name), fingerprint([r.group_dir.name for r in results]))
    write_summary(summary, paths.runs_root(runs_dir) / spec.name / f"summary-{settings}.md")
    return SplitFileResult(spec.name, results, summary)


def _check_before_training(spec: SplitSpec, dataset: CueDataset) -> None:
    """What a split asks of the data, checked before any run folder is made."""
    first = spec.split(0)
    check_labels(dataset, first)
    check_split_skeleton(dataset, first)
    if first.train_side is not None:
        split_sides(dataset.meta, dataset.clip_ids, first)


def _train_spec(spec: SplitSpec, base: TrainConfig, seeds: int, runs_dir: Path | None, resume: bool, encoder,
                loaded: dict, sources: dict) -> list[SplitResult]:
    """Every partition x seed of one spec (a published split has one partition)."""
    cache_dir = sources["cache_dir"]
    splits = spec.splits()
    dataset = load_split_data(splits[0], base.num_frames, cache_dir, sources["store"], sources["pyskl"], loaded,
                              sources["features"], sources["layout"], base.view_align,
                              chosen(base.view_align, base.given))
    if dataset.joint_features is not None:  # a feature folder: checked before any run folder is made
        check_folder_cues(dataset, base.cues)
    _check_before_training(spec, dataset)
    bank = build_text_bank(class_texts(splits[0]), encoder, paths.cache_root(cache_dir))  # same classes in each
    results = []
    for split in splits:
        cfg0 = for_features(dataclasses.replace(base, split=split.name, skeleton_encoder=resolve_encoder(
            base.skeleton_encoder, len(dataset.labels))), dataset)
        group = paths.runs_root(runs_dir) / split.name / run_name(cfg0, dataset.source_fingerprint)
        run_dirs = []
        for seed in range(seeds):
            cfg = dataclasses.replace(cfg0, seed=cfg0.seed + seed)
            run_dir = group / f"seed-{cfg.seed}"
            train(cfg, dataset, split, bank, run_dir, resume=resume, encoder_cache=paths.cache_root(cache_dir))
            run_dirs.append(run_dir)
        table = summarise_runs(run_dirs)  # notes the split's assumption and class list, as every table does
        (group / "results.md").write_text(table + "\n")
        results.append(SplitResult(split.name, group, run_dirs, table))
    return results


def _split_for_run(name: str, split_file: Path | None, kinetics200_classes) -> Split:
    if split_file is None:
        return get_split(name, kinetics200_classes=kinetics200_classes)
    spec = read_split_file(split_file)
    for split in spec.splits():
        if split.name == name:
            return split
    raise UserError(f"{split_file} has no partition {name!r} (the run was trained on it); pass the split file "
                    f"the run was trained with")


def pyskl_layout(layout: str | Path | None, pyskl: Path | None,
                 spec: SplitSpec | Split | None = None) -> Skeleton | None:
    """The skeleton of a --pyskl pickle, loaded (and checked) before any data is read: --layout,
    else the split's "skeleton" field, else None (the built-in with the pickle's joint count)."""
    if layout is not None and pyskl is None:
        raise UserError(f"--layout {layout} names the skeleton of a --pyskl pickle; stores and feature "
                        f"folders carry their own")
    if layout is not None:
        return load_layout(layout)
    if pyskl is not None and spec is not None and spec.skeleton is not None:
        return split_layout(spec.skeleton, spec.source)
    return None


def evaluate_run(run_dir: Path, *, cache_dir: Path | None = None, store: Path | None = None,
                 pyskl: Path | None = None, kinetics200_classes: Path | None = None, features: Path | None = None,
                 layout: str | Path | None = None, split_file: Path | None = None) -> dict:
    """Re-evaluate a finished run folder's checkpoint on its split (from `split_file` if it was trained
    on one). A --pyskl pickle is read with `layout`, else with the layout the checkpoint recorded (a
    layout file is not needed again)."""
    import json

    from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint

    config_path = Path(run_dir) / "config.json"
    if not Path(run_dir).exists():
        raise UserError(f"run folder {run_dir} does not exist; pass a folder made by `posebridge train`, "
                        f"e.g. outputs/runs/<split>/<settings>/seed-0")
    if not config_path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.json); pass a folder made by `posebridge train`")
    cfg = TrainConfig.from_dict(json.loads(config_path.read_text()))
    split = _split_for_run(cfg.split, split_file, kinetics200_classes)
    skel = pyskl_layout(layout, pyskl)
    if skel is None and pyskl is not None:
        recorded = load_checkpoint(Path(run_dir) / CHECKPOINT)["model_args"].get("skeleton_layout")
        skel = layout_from_dict(recorded, f"{run_dir}'s layout") if recorded else None
    dataset = load_split_data(split, cfg.num_frames, cache_dir, store, pyskl, {}, features, skel, cfg.view_align,
                              chosen(cfg.view_align, cfg.given))
    bank = build_text_bank(class_texts(split), make_text_encoder(cfg.text_encoder), paths.cache_root(cache_dir))
    return evaluate(Path(run_dir) / CHECKPOINT, dataset, split, bank, encoder_cache=paths.cache_root(cache_dir))


def ablate_cues(split_name: str, *, base: TrainConfig, seeds: int = 1, runs_dir: Path | None = None,
                **sources) -> tuple[Path, str]:
    """The cue grid (none / heatmap / features / all) x seeds on one split, the data loaded once.
    Returns the folder holding ablation.md / ablation.png and the table."""
    from posebridge.stages.eval.ablation import CUE_GRID, write_ablation

    loaded: dict = {}
    run_dirs, groups = {}, []
    for cues in CUE_GRID:
        (result,) = train_splits([split_name], base=dataclasses.replace(base, cues=cues), seeds=seeds,
                                 runs_dir=runs_dir, loaded=loaded, **sources)
        run_dirs[cues] = result.run_dirs
        groups.append(result.group_dir.name)
    folder = result.group_dir.parent / f"ablation-{fingerprint(groups)[:8]}"
    return folder, write_ablation(folder, result.split, run_dirs)


def export_features(split_name: str, out: Path, *, base: TrainConfig, cache_dir: Path | None = None,
                    store: Path | None = None, pyskl: Path | None = None, kinetics200_classes: Path | None = None,
                    with_cues: bool = True, layout: str | Path | None = None) -> dict[str, int]:
    """A split's frozen Shift-GCN features as a SynSE/PURLS feature folder at `out` (the encoder is
    the one `train --skeleton-encoder shiftgcn` with the same settings uses: cached, or pretrained now),
    with its pooled cue tokens when `with_cues` and the data has cues. `layout`: as for train_splits."""
    from posebridge.stages.train.export_features import export_split_features, refuse_existing

    refuse_existing(out)  # before any data is read
    split = get_split(split_name, kinetics200_classes=kinetics200_classes)
    check_reachable(split)
    skel = pyskl_layout(layout, pyskl, split)
    if store is None and pyskl is None:
        find_store(split, cache_dir)
    dataset = load_split_data(split, base.num_frames, cache_dir, store, pyskl, {}, layout=skel,
                              view_align=base.view_align, chosen_align=chosen(base.view_align, base.given))
    cfg = dataclasses.replace(base, split=split.name, cues="none").validate()
    return export_split_features(cfg, dataset, split, out, encoder_cache=paths.cache_root(cache_dir),
                                 with_cues=with_cues)
