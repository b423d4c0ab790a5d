"""The `posebridge` command line: a thin typer layer over plain functions.

Each command parses its options and calls one function that tests can call directly. User
mistakes raise UserError and come out as one line on stderr with exit code 1.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from posebridge.stages.extract.config import CueConfig, ExtractConfig, RunSettings
from posebridge.cache.errors import UserError
from posebridge.cache.layouts import BUILTIN_NAMES
from posebridge.stages.train.config import TrainConfig, config_default
from posebridge.stages.train.encoders import AUTO_SHIFTGCN_MIN_CLIPS
from posebridge.stages.train.presets import preset_value

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="PoseBridge: pose-anchored cue caching (stage 1) and zero-shot heads (stage 2).")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect cue caches, check they are complete, compact them.")
app.add_typer(cache_app, name="cache")

EXIT_SOME_FAILED = 3  # extraction finished, but some clips could not be read (see the failure log)
EXIT_INCOMPLETE = 4  # `cache info --videos`: the store lacks clips of the folder
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished clips are kept, the same command resumes

# Feature levels per backend when --levels is not given (mmpose: its default model, RTMPose-s).
DEFAULT_LEVELS = {"embedded": ",".join(CueConfig.levels), "mmpose": "stage2,stage3,stage4"}



def default_of(name: str, *presets: str) -> str:
    """A TrainConfig field's default as --help names it, read so the text follows the dataclass:
    'default 30', or per preset 'posebridge 30, purls 100'."""
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    if not presets:
        return f"default {show(config_default(name))}"
    return ", ".join(f"{p} {show(preset_value(TrainConfig, p, name))}" for p in presets)


K200_HELP = ("Your Kinetics-200 class list (one Kinetics-400 name per line, 200 lines, in label order); default: "
             "the first 200 Kinetics-400 classes, the best reading of PURLS's files (`posebridge splits "
             "kinetics200_180_20` shows it and why).")
CacheDir = typer.Option(None, "--cache-dir", help="Cache root (default: $POSEBRIDGE_CACHE, else the clone's outputs/cache when run from a clone, else ./outputs/cache).")

# Options that several stage-2 commands share, written once (as CacheDir).
PysklLayout = typer.Option(None, "--layout", help="The --pyskl pickle's skeleton: a built-in layout name ("
                           f"{', '.join(BUILTIN_NAMES)}) or a layout .json file (docs/layouts.md); default: a split "
                           "file's `skeleton`, else the layout the pickle records (`posebridge import` does), else "
                           "the built-in with the pickle's joint count (17, 25, 33).")
ShiftGCNEpochs = typer.Option(None, "--shiftgcn-epochs", help="Pretraining epochs of the Shift-GCN encoder "
                                                                    f"({default_of('shiftgcn_epochs')}).")
ShiftGCNWidth = typer.Option(None, "--shiftgcn-width", help="Shift-GCN's first width; features are 4x "
                                                                f"as wide ({default_of('shiftgcn_width')}).")
ViewAlign = typer.Option(None, "--view-align", help="Turn 3D skeletons into the main actor's body frame after "
                         "loading: none, first (the first frame's body axes, as pyskl PreNormalize3D and the NTU "
                         "pre-normalisation of Shift-GCN / MS-G3D) or mean (the axes averaged over the clip; safer on "
                         "noisy skeletons); up = torso bottom -> top onto +y, the layout's `across` onto +x. 3D "
                         "skeletons only: a --pyskl pickle read with a 3D layout that names `across`; 2D data, cue "
                         "stores (z estimated) and feature folders stay as they are, said in one line where the mode was chosen "
                         f"({default_of('view_align', 'posebridge', 'purls')}; docs/method.md).")


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"expected comma-separated joint indices, got '{text}'") from None


def parse_joints(joints: str) -> tuple[int, ...]:
    """--joints: body13, all, or comma-separated joint indices."""
    from posebridge.stages.extract.config import BODY13, BLAZEPOSE_JOINTS

    joint_sets = {"body13": BODY13, "all": tuple(range(len(BLAZEPOSE_JOINTS)))}
    return joint_sets.get(joints) or _parse_ints(joints)


def build_extract_config(backend: str, levels: str, joints: str, stride: int, max_frames: Optional[int],
                         window: int, heatmap_patch: int, feature_dtype: str, max_persons: int = ExtractConfig.max_persons):

    cue_joints = parse_joints(joints)
    for flag, value in (("--stride", stride), ("--window", window), ("--heatmap-patch", heatmap_patch),
                        ("--max-frames", max_frames if max_frames is not None else 1), ("--max-persons", max_persons)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if feature_dtype not in ("uint8", "float16"):
        raise UserError(f"--feature-dtype must be uint8 or float16, got '{feature_dtype}'")
    cues = CueConfig(levels=tuple(l.strip() for l in levels.split(",") if l.strip()), joints=cue_joints,
                     window=window, heatmap_patch=heatmap_patch, feature_dtype=feature_dtype)
    return ExtractConfig(backend=backend, cues=cues, stride=stride, max_frames=max_frames, max_persons=max_persons)


@app.command()
def extract(
    videos: Path = typer.Option(..., "--videos", help="Folder of videos (searched recursively)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Cache name (default: the videos folder's name); "
                                          "ntu60*/ntu120*/kinetics* names parse those datasets' file names / "
                                          "annotations; others: a folder, or one folder per class."),
    backend: str = typer.Option(ExtractConfig.backend, "--backend", help="Pose model backend: embedded (BlazePose, offline, "
                                "CPU) or mmpose (the mmpose extra; GPU when there is one; RTMPose-s by default)."),
    cache_dir: Optional[Path] = CacheDir,
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Kinetics CSV (label,youtube_id,time_start,time_end,split)."),
    levels: Optional[str] = typer.Option(None, "--levels", help="Feature-map levels sampled at the joints (default: "
                                         "fpn64,fpn16 for embedded; stage2,stage3,stage4 for mmpose's RTMPose; "
                                         "HRNet: backbone)."),
    joints: str = typer.Option("body13", "--joints", help="Cue joints: body13, all, or comma-separated indices."),
    window: int = typer.Option(CueConfig.window, "--window", help="k x k samples around each joint."),
    heatmap_patch: int = typer.Option(CueConfig.heatmap_patch, "--heatmap-patch", help="P x P heatmap patch per cue joint."),
    feature_dtype: str = typer.Option(CueConfig.feature_dtype, "--feature-dtype", help="uint8 (per-clip scales) or float16."),
    stride: int = typer.Option(ExtractConfig.stride, "--stride", help="Keep every k-th frame."),
    max_frames: Optional[int] = typer.Option(ExtractConfig.max_frames, "--max-frames", help="At most this many frames per clip."),
    max_persons: int = typer.Option(ExtractConfig.max_persons, "--max-persons", help="People followed per frame (M), each in its own "
                                    "slot, main actor first; 1 = the single most confident person."),
    workers: int = typer.Option(RunSettings.workers, "--workers", help="Extraction processes, each writing its own parts (0: one per core this process may use; shared out between the torchrun processes of a node)."),
    threads: int = typer.Option(RunSettings.num_threads, "--threads", help="Interpreter threads per worker (0: cores / workers)."),
    shard_clips: int = typer.Option(RunSettings.shard_clips, "--shard-clips", help="Clips buffered per part (a part is written whole, then renamed into the store)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Model files (default: $POSEBRIDGE_MODELS, else the clone's assets/models, else ~/.cache/posebridge/models filled by `posebridge setup`)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    mmpose_checkpoint: Optional[Path] = typer.Option(None, "--mmpose-checkpoint", help="mmpose backend: local checkpoint file."),
    mmpose_config: Optional[str] = typer.Option(None, "--mmpose-config", help="mmpose backend: config name in the "
                                                "mmpose wheel or a local config file (default: RTMPose-s 256x192 COCO, "
                                                "the paper's HPE)."),
    device: Optional[str] = typer.Option(None, "--device", help="mmpose backend: cuda or cpu (default: cuda if "
                                         "available; cuda:$LOCAL_RANK under torchrun; fp16 autocast on cuda)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="mmpose backend: person crops per forward "
                                             "pass, from many frames (default: 64 on cuda, 8 on cpu)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Extract shard i of n (0-based, e.g. 0/4; clips split "
                                        "by a hash of their id). Default: torchrun's RANK/WORLD_SIZE, a SLURM "
                                        "array's SLURM_ARRAY_TASK_ID/_COUNT, else everything."),
) -> None:
    """Stage 1: run the pose model over VIDEOS and cache skeletons + pose-anchored cues (resumable).

    Any number of these commands may run at once on the same videos and cache, on one machine or
    many sharing the filesystem (torchrun, SLURM arrays, a second run by hand): each clip is claimed
    in the store before it is extracted, so every clip is extracted once. The first line says which
    shard this process runs; the last lines whether the store holds every clip of VIDEOS.

    Exit code 0 when every clip was extracted, 3 when some failed (they are listed in the store's
    failures.jsonl and retried on the next run), 130 when stopped by Ctrl-C or SIGTERM (finished
    clips are kept; run the same command to resume), 1 on a usage error.
    """
    from posebridge.stages.extract.run import extract as run_extract
    from posebridge.stages.extract.shard import detect_shard

    levels = levels if levels is not None else DEFAULT_LEVELS.get(backend, DEFAULT_LEVELS["embedded"])
    config = build_extract_config(backend, levels, joints, stride, max_frames, window, heatmap_patch, feature_dtype,
                                  max_persons)
    run = RunSettings(num_threads=threads, workers=workers, shard_clips=shard_clips)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    options = {k: v for k, v in (("checkpoint", mmpose_checkpoint), ("model_config", mmpose_config),
                                 ("device", device), ("batch_size", batch_size)) if v is not None}
    if options and backend != "mmpose":
        raise UserError(f"--mmpose-checkpoint/--mmpose-config/--device/--batch-size apply to --backend mmpose, "
                        f"not {backend}")
    which = detect_shard(shard)
    try:
        summary = run_extract(videos, dataset, cache_dir=cache_dir, config=config, run=run, annotations=annotations,
                              models_dir=models_dir, progress=progress, backend_options=options, shard=which,
                              echo=lambda line: typer.echo(line))
    except KeyboardInterrupt:  # stopped before any work was handed out
        typer.echo("interrupted before extraction started; nothing was written", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.interrupted:
        typer.echo(summary.interrupted_line(), err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    for line in summary.lines():
        typer.echo(line)
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def resolve_store(store: str, cache_dir: Optional[Path] = None) -> Path:
    """A store path, or a dataset name whose single store under the cache root is meant."""
    from posebridge.pipeline.stores import resolve_store as resolve

    return resolve(store, cache_dir)


@cache_app.command("info")
def cache_info(store: str = typer.Argument(..., help="Store path or dataset name."), cache_dir: Optional[Path] = CacheDir,
               videos: Optional[Path] = typer.Option(None, "--videos", help="Also say whether the store holds every "
                                                     "clip of this folder (current bytes and labels)."),
               annotations: Optional[Path] = typer.Option(None, "--annotations", help="With --videos: the Kinetics "
                                                          "CSV the store was extracted with.")) -> None:
    """Print a store's live clips and bytes (apart from superseded copies, tmp folders and claims),
    failures and extractor settings. With --videos: whether every clip of that folder is in it
    (exit code 4 when not)."""
    import json

    from posebridge.cache.store import CueStore

    opened = CueStore.open(resolve_store(store, cache_dir))
    info = {"path": str(opened.path), **opened.info(), "extractor": opened.attrs.get("extractor")}
    for key, value in info.items():
        typer.echo(f"{key}: {value if isinstance(value, (str, int, float)) else json.dumps(value, default=str)}")
    if videos is not None:
        from posebridge.stages.extract.coverage import folder_coverage

        cover = folder_coverage(opened, videos, annotations)
        typer.echo(cover.line())
        if not cover.complete:
            raise typer.Exit(EXIT_INCOMPLETE)


@cache_app.command("compact")
def cache_compact(store: str = typer.Argument(..., help="Store path or dataset name."),
                  cache_dir: Optional[Path] = CacheDir) -> None:
    """Remove superseded copies of clips, stale tmp folders and dead claims. Safe while other
    processes read the store or extract into it."""
    from posebridge.cache.compact import compact

    typer.echo(compact(resolve_store(store, cache_dir)).line())


@app.command()
def export(
    store: str = typer.Argument(..., help="Store path or dataset name."),
    format: str = typer.Option("pyskl", "--format", help="pyskl (pickle) or hdf5."),
    out: Path = typer.Option(..., "--out", help="Output file."),
    layout: str = typer.Option("coco17", "--layout", help="pyskl: coco17 (17 COCO joints, what pyskl's and "
                               "mmaction2's 2D GCNs take), full (every joint of the store), or another "
                               "layout name / .json file whose joints the store has (docs/layouts.md)."),
    cache_dir: Optional[Path] = CacheDir,
) -> None:
    """Export a cache to the PYSKL pickle format (keypoint [M, T, V, 2] pixels) or to HDF5."""
    from posebridge.cache import export as exporters
    from posebridge.cache.store import CueStore

    opened = CueStore.open(resolve_store(store, cache_dir))
    if format == "pyskl":
        exporters.export_pyskl(opened, out, split=_standard_split(opened), layout=layout)
    elif format == "hdf5":
        exporters.export_hdf5(opened, out)
    else:
        raise UserError(f"unknown export format '{format}'; use pyskl or hdf5")
    typer.echo(f"wrote {out}")


def _formats_help(short: bool = False) -> str:
    """`posebridge import --help` text: the formats as the registry describes them, one paragraph each."""
    from posebridge.stages.datasets.skeleton_formats import FORMATS

    if short:
        return ", ".join(FORMATS)
    return "\n\n".join(f"{name}: {fmt.summary}; layout {fmt.layout}." for name, fmt in FORMATS.items())


@app.command("import", short_help=f"Convert a public skeleton release ({_formats_help(short=True)}) into a PYSKL "
                                  "pickle with its sides.",
             help="Convert a public skeleton release into a PYSKL pickle for `train --pyskl`: the data set's own "
                  "sides as split lists, its layout recorded (no --layout needed). A file that is empty, truncated "
                  "or not of the format is skipped and reported on one line with what to do; the others are "
                  "imported. docs/own-data.md has each format's choices. FORMAT is one of:\n\n" + _formats_help())
def import_release(
    format: str = typer.Argument(..., metavar="FORMAT", help="The release's format (listed above)."),
    src: Path = typer.Argument(..., metavar="SRC", help="The release's folder of skeleton files."),
    out: Path = typer.Option(..., "--out", help="New PYSKL pickle (never overwritten)."),
    label_dir: Optional[Path] = typer.Option(None, "--label-dir", help="pkummd: the folder of label files "
                                             "(default: Train_Label_PKU_final, or another *label* folder, in SRC "
                                             "or beside it)."),
    split_dir: Optional[Path] = typer.Option(None, "--split-dir", help="pkummd: the folder of cross-subject.txt "
                                             "and cross-view.txt (default: Split/ in SRC or beside it)."),
) -> None:
    from posebridge.stages.datasets import skeleton_formats

    report = skeleton_formats.import_release(format, src, out, label_dir=label_dir, split_dir=split_dir)
    for line in report.lines():
        typer.echo(line)


@app.command("import-ntu")
def import_ntu(
    src: Path = typer.Argument(..., help="Folder of NTU RGB+D .skeleton files (SsssCcccPpppRrrrAaaa.skeleton)."),
    out: Path = typer.Option(..., "--out", help="New PYSKL pickle (never overwritten)."),
) -> None:
    """`posebridge import ntu SRC --out FILE`, under its old name: NTU RGB+D 60/120 .skeleton files -> a 3D
    PYSKL pickle (keypoint [M, T, 25, 3] metres, label = action - 1, split lists xsub and xview (NTU-60) or
    xsub and xset (NTU-120)) for `train --pyskl`."""
    import_release("ntu", src, out, label_dir=None, split_dir=None)


@app.command("export-features")
def export_features(
    split: str = typer.Option(..., "--split", help="Split name; the encoder is pretrained on its seen classes."),
    out: Path = typer.Option(..., "--out", help="New folder for train/val/test_feature.npy, *_labels.npy and "
                             "(with cue tokens) *_cue.npy."),
    cache_dir: Optional[Path] = CacheDir,
    store: Optional[Path] = typer.Option(None, "--store", help="Use this cue store instead of the dataset's only one."),
    pyskl: Optional[Path] = typer.Option(None, "--pyskl", help="Use a PYSKL pickle's skeletons instead of a cue store."),
    layout: Optional[str] = PysklLayout,
    preset: str = typer.Option(config_default("preset"), "--preset", help="Method preset whose Shift-GCN recipe (and feature "
                               "normalisation) the encoder uses: posebridge, purls or dynapurls (as `train --preset`)."),
    shiftgcn_epochs: Optional[int] = ShiftGCNEpochs,
    shiftgcn_width: Optional[int] = ShiftGCNWidth,
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the train/val partition (as `train --seed`)."),
    view_align: Optional[str] = ViewAlign,
    cue_tokens: bool = typer.Option(True, "--cue-tokens/--no-cue-tokens",
                                    help="Also write <side>_cue.npy: the clip's cues pooled to --cue-steps tokens "
                                         "(for `train --features DIR --cues all`); skipped when the data has no cues."),
    cue_steps: Optional[int] = typer.Option(None, "--cue-steps", help=f"Temporal cue tokens per clip ({default_of('cue_steps')})."),
    device: Optional[str] = typer.Option(None, "--device", help=f"auto, cpu or cuda ({default_of('device')})."),
    kinetics200_classes: Optional[Path] = typer.Option(None, "--kinetics200-classes", help=K200_HELP),
) -> None:
    """Write a split's frozen Shift-GCN features as a SynSE/PURLS feature folder ([N, C, 3, V] float32
    per side, the reference layout: train = seen classes of the training side, val = seen classes of
    the test side, test = unseen classes of the test side, plus SynSE's gtest.npy / g_label.npy), with
    the clips' cues pooled to cue tokens, for `train --features` or the PURLS / DynaPURLS code. The
    encoder is the cached one a `train --skeleton-encoder shiftgcn` run with the same settings uses,
    or is pretrained now."""
    from posebridge.pipeline.run import export_features as export_split
    from posebridge.stages.train.presets import resolve

    given = dict(seed=seed, device=device, cue_steps=cue_steps, shiftgcn_epochs=shiftgcn_epochs,
                 shiftgcn_width=shiftgcn_width, view_align=view_align)
    base = resolve(TrainConfig, preset, given, split=split, skeleton_encoder="shiftgcn").validate()
    counts = export_split(split, out, base=base, cache_dir=cache_dir, store=store, pyskl=pyskl,
                          kinetics200_classes=kinetics200_classes, with_cues=cue_tokens, layout=layout)
    typer.echo(f"wrote {out}: " + ", ".join(f"{side} {n}" for side, n in counts.items()) + " rows")


def _standard_split(store) -> dict | None:
    """NTU stores get the standard xsub/xview split lists in their PYSKL export."""
    from posebridge.stages.datasets.ntu import ntu_benchmark_splits

    records = store.clips()
    if records and all("subject" in r.meta for r in records):
        return ntu_benchmark_splits(records)
    return None


@app.command()
def splits(
    name: Optional[str] = typer.Argument(None, help="Show one split's seen and unseen class names."),
    kinetics200_classes: Optional[Path] = typer.Option(None, "--kinetics200-classes", help=K200_HELP),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="Check a split file and show its partitions."),
) -> None:
    """List the published zero-shot splits (seen/unseen counts, source), or show one in full."""
    from posebridge.stages.splits.registry import get_split, list_splits
    from posebridge.stages.splits.split_file import read_split_file

    if split_file is not None:
        for part in read_split_file(split_file).splits():
            typer.echo(f"{part.name}: unseen ({len(part.unseen)}): "
                       + "; ".join(f"{i} {part.class_names[i]}" for i in part.unseen))
        return
    if name is None:
        typer.echo(f"{'split':34} {'dataset':12} {'seen':>5} {'unseen':>6}  status")
        for row in list_splits():
            typer.echo(f"{row['name']:34} {row['dataset']:12} {row['n_seen']:>5} {row['n_unseen']:>6}  {row['status']}")
        return
    from posebridge.stages.train.sides import describe

    split = get_split(name, kinetics200_classes=kinetics200_classes)
    typer.echo(f"{split.name}: {split.dataset}, protocol {split.protocol}, source {split.source}")
    for label, text in (("about", split.about), ("no reachable data", split.no_data),
                        ("class list", split.class_list_source), ("assumption", split.assumption)):
        if text:
            typer.echo(f"{label}: {text}")
    same = (split.train_side.kind, split.train_side.values) == (split.test_side.kind, split.test_side.values)
    both = " (the same clips: ZSL only, no GZSL)" if same else ""
    typer.echo(f"sides: train = {describe(split.train_side)}; test = {describe(split.test_side)}{both}")
    typer.echo(f"unseen ({len(split.unseen)}): " + "; ".join(f"{i} {split.class_names[i]}" for i in split.unseen))
    typer.echo(f"seen ({len(split.seen)}): " + "; ".join(f"{i} {split.class_names[i]}" for i in split.seen))


SplitOpt = typer.Option(None, "--kinetics200-classes", help=K200_HELP)


@app.command()
def train(
    split: Optional[list[str]] = typer.Option(None, "--split", help="Split name (repeat for several splits off one cache)."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="Your split as a JSON file (classes, train/test "
                                              "sides, one or more seen/unseen partitions; docs/own-data.md): every "
                                              "partition x seed is trained, then one mean +- std row is printed."),
    cache_dir: Optional[Path] = CacheDir,
    store: Optional[Path] = typer.Option(None, "--store", help="Train on this cue store instead of the dataset's only one."),
    pyskl: Optional[Path] = typer.Option(None, "--pyskl", help="Train skeleton-only from a PYSKL pickle (with --cues none): "
                                         "COCO-17 2D or NTU-25 3D (any other skeleton: --layout), up to 2 persons, "
                                         "read without running code."),
    layout: Optional[str] = PysklLayout,
    features: Optional[Path] = typer.Option(None, "--features", help="Train on a SynSE/PURLS feature folder "
                                            "(train/val/test_feature.npy [N, C, T', V] + *_labels.npy; the folder "
                                            "must be the split's own). --cues none, or --cues all when it also holds "
                                            "train/val/test_cue.npy cue tokens [N, S, D]."),
    preset: str = typer.Option(config_default("preset"), "--preset", help="Method preset: posebridge (this project's defaults), "
                               "purls or dynapurls (every choice the reference code makes; docs/method-presets.md). "
                               "Flags given explicitly win over the preset."),
    cues: Optional[str] = typer.Option(None, "--cues", help="Pose-anchored cues in the bridge: none, heatmap, features, "
                                       "all (default all)."),
    seeds: int = typer.Option(1, "--seeds", help="Train this many seeds; tables report mean +- std."),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"First seed ({default_of('seed')})."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of the heads "
                                          f"({default_of('epochs', 'posebridge', 'purls')})."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Clips per training step "
                                              f"({default_of('batch_size', 'posebridge', 'purls')})."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate "
                                     f"({default_of('lr', 'posebridge', 'purls')}; the optimizer: --optimizer)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adamw or adam."),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="cosine (warmup, then cosine to 10%) or "
                                              "plateau (x0.1 after 25 epochs without a lower validation loss)."),
    selection: Optional[str] = typer.Option(None, "--selection", help="Checkpoint kept: last, or best_val_loss "
                                            "(lowest loss on the seen-class validation side)."),
    text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="minilm (bundled) or clip:<local dir or HF "
                                               "id in your cache> (the presets purls / dynapurls use CLIP ViT-B/32)."),
    temperature: Optional[str] = typer.Option(None, "--temperature", help="exp (logits = exp(s) cos, capped at 100) or "
                                              "direct (s cos, s from log(1/0.07) = 2.66: PURLS)."),
    temperature_init: Optional[float] = typer.Option(None, "--temperature-init", help="The logit temperature the learnt "
                                                     f"scale starts from ({default_of('temperature_init')})."),
    soft_targets: Optional[float] = typer.Option(None, "--soft-targets", help="Share of the global loss's target "
                                                 "taken from the class texts' own similarities, 0 to 1 "
                                                 f"({default_of('soft_targets')}: one-hot)."),
    projection: Optional[str] = typer.Option(None, "--projection", help="linear (one per kind) or shared_mlp (PURLS)."),
    feature_norm: Optional[str] = typer.Option(None, "--feature-norm", help="Frozen Shift-GCN features: none or cell_l2 "
                                               "(each joint-step cell L2-normalised, as feature folders are read)."),
    proto_mix: Optional[float] = typer.Option(None, "--proto-mix", help="Class prototype = mix x name prompts + "
                                              "(1 - mix) x description (posebridge 0.5, purls 0: description only)."),
    text_adapter: Optional[bool] = typer.Option(None, "--text-adapter/--no-text-adapter",
                                                help="A shared residual MLP adapts the class prototypes in training "
                                                     "(posebridge: on; purls: off, the encoded texts as they are)."),
    num_frames: Optional[int] = typer.Option(None, "--num-frames", help="Frames every clip is resampled to "
                                                f"({default_of('num_frames')})."),
    view_align: Optional[str] = ViewAlign,
    gzsl_calibration: Optional[str] = typer.Option(None, "--gzsl-calibration", help="pseudo_unseen or none."),
    hubness: Optional[str] = typer.Option(None, "--hubness", help="ZSL scores: csls (each unseen class lowered by "
                                          "its prototype's CSLS hubness over the training clips' embeddings; not "
                                          "transductive) or none (plain cosines) "
                                          f"({default_of('hubness', 'posebridge', 'purls')}; docs/method.md)."),
    ttr: Optional[bool] = typer.Option(None, "--ttr/--no-ttr", help="DynaPURLS test-time refinement: the unseen class "
                                       "texts adapt to the unlabelled test batches (TRANSDUCTIVE, marked in every table; "
                                       "needs --gzsl-calibration none)."),
    ttr_lr: Optional[float] = typer.Option(None, "--ttr-lr", help="TTR Adam learning rate (DynaPURLS 1e-2)."),
    ttr_steps: Optional[int] = typer.Option(None, "--ttr-steps", help="TTR Adam steps per test batch (DynaPURLS 1)."),
    ttr_memory: Optional[int] = typer.Option(None, "--ttr-memory", help="TTR samples kept per class (DynaPURLS 16)."),
    ttr_threshold: Optional[float] = typer.Option(None, "--ttr-threshold", help="TTR confidence to enter the memory "
                                                  "(DynaPURLS 0.1)."),
    ttr_order: Optional[str] = typer.Option(None, "--ttr-order", help="TTR batch order: fixed or shuffled (seeded)."),
    ttr_refine: Optional[str] = typer.Option(None, "--ttr-refine", help="TTR adapts the global prototypes (global) or "
                                             "every text feature (all: DynaPURLS)."),
    ttr_schedule: Optional[str] = typer.Option(None, "--ttr-schedule", help="TTR lr: constant or cosine over the steps."),
    skeleton_encoder: Optional[str] = typer.Option(None, "--skeleton-encoder",
                                                   help="gcn (small, trained with the heads), shiftgcn (pretrained per "
                                                        "split on the seen classes, frozen, features cached) or auto "
                                                        f"(gcn for data sets under {AUTO_SHIFTGCN_MIN_CLIPS} clips, "
                                                        f"the synthetic demo's included; shiftgcn otherwise)."),
    shiftgcn_epochs: Optional[int] = ShiftGCNEpochs,
    shiftgcn_width: Optional[int] = ShiftGCNWidth,
    shiftgcn_wd: Optional[str] = typer.Option(None, "--shiftgcn-wd", help="Shift-GCN pretraining weight decay: single "
                                              "(1e-4 on every parameter) or reference (Shift-GCN main.py: 1e-3 on the "
                                              "linear weights, 0 on the masks, 1e-4 elsewhere; purls preset)."),
    adaptive_parts: Optional[bool] = typer.Option(None, "--adaptive-parts/--fixed-parts",
                                                  help="PURLS adaptive partitioning: each class's part / phase "
                                                       "descriptions attend over joint x time features (default: "
                                                       "fixed joint groups, thirds)."),
    symmetric_loss: Optional[bool] = typer.Option(None, "--symmetric-loss/--one-way-loss",
                                                  help="PURLS loss: skeleton<->text contrastive per representation, "
                                                       "learnable temperatures (default: one-way cross-entropy)."),
    cue_steps: Optional[int] = typer.Option(None, "--cue-steps", help="Temporal cue tokens per person "
                                            f"({default_of('cue_steps')})."),
    device: Optional[str] = typer.Option(None, "--device", help=f"auto, cpu or cuda ({default_of('device')})."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Run folders (default: $POSEBRIDGE_RUNS, else the clone's outputs/runs when run from a clone, else ./outputs/runs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from each run folder's checkpoint."),
    kinetics200_classes: Optional[Path] = SplitOpt,
) -> None:
    """Stage 2: train the PoseBridge heads on a split's cue cache and evaluate ZSL / GZSL."""
    from posebridge.pipeline.run import train_split_file, train_splits
    from posebridge.stages.train.presets import resolve

    if bool(split) == (split_file is not None):
        raise UserError("give either --split NAME or --split-file FILE.json (not both, not neither)")
    # None = not given: the value comes from the preset, else from TrainConfig (defaults live there)
    given = dict(cues=cues, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                 lr_schedule=lr_schedule, selection=selection, text_encoder=text_encoder, temperature=temperature,
                 temperature_init=temperature_init, soft_targets=soft_targets,
                 projection=projection, feature_norm=feature_norm, proto_mix=proto_mix, text_adapter=text_adapter,
                 num_frames=num_frames, view_align=view_align, gzsl_calibration=gzsl_calibration, hubness=hubness, ttr=ttr,
                 ttr_lr=ttr_lr, ttr_steps=ttr_steps, ttr_memory=ttr_memory, ttr_min_conf=ttr_threshold,
                 ttr_order=ttr_order, ttr_refine=ttr_refine, ttr_schedule=ttr_schedule,
                 skeleton_encoder=skeleton_encoder, shiftgcn_epochs=shiftgcn_epochs, shiftgcn_width=shiftgcn_width,
                 shiftgcn_wd=shiftgcn_wd, adaptive_parts=adaptive_parts, symmetric_loss=symmetric_loss, cue_steps=cue_steps, device=device)
    base = resolve(TrainConfig, preset, given, split=split[0] if split else split_file.stem).validate()
    if split_file is not None:
        done = train_split_file(split_file, base=base, seeds=seeds, cache_dir=cache_dir, store=store, pyskl=pyskl,
                                features=features, runs_dir=runs_dir, resume=resume, layout=layout)
        for result in done.results:
            typer.echo(f"\n{result.table}\nrun folders: {result.group_dir}")
        typer.echo(f"\n{done.summary.table}\nsummary: {done.summary.path}")
        return
    results = train_splits(split, base=base, seeds=seeds, cache_dir=cache_dir, store=store, pyskl=pyskl,
                           runs_dir=runs_dir, kinetics200_classes=kinetics200_classes, resume=resume,
                           features=features, layout=layout)
    for result in results:
        typer.echo(f"\n{result.table}\nrun folders: {result.group_dir}")


@app.command()
def ablate(
    split: str = typer.Option(..., "--split", help="Split name."),
    cache_dir: Optional[Path] = CacheDir,
    store: Optional[Path] = typer.Option(None, "--store", help="Use this cue store instead of the dataset's only one."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per cue mode; the table reports mean +- std."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Training epochs of the heads, per run "
                                         f"({default_of('epochs')})."),
    device: Optional[str] = typer.Option(None, "--device", help=f"auto, cpu or cuda ({default_of('device')})."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Run folders (default: $POSEBRIDGE_RUNS, else the clone's outputs/runs when run from a clone, else ./outputs/runs)."),
    kinetics200_classes: Optional[Path] = SplitOpt,
) -> None:
    """Cue ablation: train none / heatmap / features / all x seeds off one cache in one process;
    writes ablation.md (one markdown table) and ablation.png next to the run folders."""
    from posebridge.pipeline.run import ablate_cues
    from posebridge.stages.train.presets import resolve

    # None = not given: TrainConfig's default (the project's preset), as `train` resolves them
    base = resolve(TrainConfig, config_default("preset"), dict(epochs=epochs, device=device), split=split).validate()
    folder, table = ablate_cues(split, base=base, seeds=seeds, cache_dir=cache_dir, store=store, runs_dir=runs_dir,
                                kinetics200_classes=kinetics200_classes)
    typer.echo(f"\n{table}\ntable and plot: {folder / 'ablation.md'}, {folder / 'ablation.png'}")


@app.command("eval")
def eval_run(
    run: Path = typer.Argument(..., help="A run folder written by `posebridge train` (holds checkpoint.pt)."),
    cache_dir: Optional[Path] = CacheDir,
    store: Optional[Path] = typer.Option(None, "--store", help="The cue store the run was trained on, if its "
                                         "dataset has several."),
    pyskl: Optional[Path] = typer.Option(None, "--pyskl", help="The PYSKL pickle the run was trained on."),
    layout: Optional[str] = typer.Option(None, "--layout", help="The --pyskl pickle's skeleton (name or .json); "
                                         "default: the layout the run recorded."),
    features: Optional[Path] = typer.Option(None, "--features", help="The feature folder the run was trained on."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="The split file the run was trained with."),
    kinetics200_classes: Optional[Path] = SplitOpt,
) -> None:
    """Re-evaluate a trained run's checkpoint and print its metrics as JSON."""
    import json

    from posebridge.pipeline.run import evaluate_run

    metrics = evaluate_run(run, cache_dir=cache_dir, store=store, pyskl=pyskl, features=features, layout=layout,
                           split_file=split_file, kinetics200_classes=kinetics200_classes)
    typer.echo(json.dumps(metrics, indent=2, default=str))


def _split_levels(levels: Optional[str]) -> Optional[tuple[str, ...]]:
    return tuple(l.strip() for l in levels.split(",") if l.strip()) if levels else None


RunCueOpts = {  # stage-1 settings of predict / render; cue settings default to the run's own
    "backend": typer.Option(ExtractConfig.backend, "--backend", help="Pose model backend (as for extract)."),
    "levels": typer.Option(None, "--levels", help="Feature-map levels (default: the run's, else extract's default)."),
    "joints": typer.Option(None, "--joints", help="Cue joints: body13, all or indices (default: the run's)."),
    "heatmap_patch": typer.Option(None, "--heatmap-patch", help="P x P heatmap patch (default: the run's)."),
    "stride": typer.Option(ExtractConfig.stride, "--stride", help="Keep every k-th frame."),
    "max_frames": typer.Option(ExtractConfig.max_frames, "--max-frames", help="At most this many frames per clip."),
    "models_dir": typer.Option(None, "--models-dir", help="Model files (default: $POSEBRIDGE_MODELS, else the clone's assets/models, else ~/.cache/posebridge/models filled by `posebridge setup`)."),
}


@app.command()
def predict(
    videos: list[Path] = typer.Argument(..., help="Video (or image) files to classify."),
    run: Path = typer.Option(..., "--run", help="A run folder made by `posebridge train` / `make demo` (its "
                             "seed-* parent works too: the lowest seed is used)."),
    classes: Optional[str] = typer.Option(None, "--classes", help='Class names separated by ";", e.g. '
                                          '"drink water;jump up;kick something".'),
    classes_file: Optional[Path] = typer.Option(None, "--classes-file", help="One class per line: the name, "
                                                "optionally a TAB and a description."),
    top_k: int = typer.Option(5, "--top-k", help="Classes shown per clip."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (for machines) instead of tables."),
    cache_dir: Optional[Path] = CacheDir,
    backend: str = RunCueOpts["backend"],
    levels: Optional[str] = RunCueOpts["levels"],
    joints: Optional[str] = RunCueOpts["joints"],
    heatmap_patch: Optional[int] = RunCueOpts["heatmap_patch"],
    stride: int = RunCueOpts["stride"],
    max_frames: Optional[int] = RunCueOpts["max_frames"],
    models_dir: Optional[Path] = RunCueOpts["models_dir"],
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda (default: the run's)."),
) -> None:
    """Open-vocabulary use: rank any class texts for each video with a trained run.

    The videos go through stage 1 into the cache (dataset 'adhoc'; a second call runs no pose
    model), the texts through the run's own text encoder and prompt templates, the clips through
    the run's heads. Prints a ranked table per clip, or JSON with --json.
    """
    from posebridge.pipeline.predict import parse_classes, predict as run_predict, read_classes_file

    if (classes is None) == (classes_file is None):
        raise UserError('give the classes either as --classes "a;b;c" or as --classes-file FILE (one of them)')
    texts = parse_classes(classes) if classes is not None else read_classes_file(classes_file)
    result = run_predict(videos, run, texts, top_k=top_k, cache_dir=cache_dir, models_dir=models_dir,
                         backend=backend, levels=_split_levels(levels), joints=parse_joints(joints) if joints else None,
                         heatmap_patch=heatmap_patch, stride=stride, max_frames=max_frames, device=device)
    typer.echo(result.to_json() if as_json else result.table())


@app.command()
def render(
    video: Path = typer.Argument(..., help="A video (or image) file."),
    out: Path = typer.Option(..., "--out", help="Output: FILE.mp4 (H.264), FILE.gif, or FILE.png (one still frame)."),
    size: int = typer.Option(640, "--size", help="Longest side of the output, in pixels."),
    frame: Optional[int] = typer.Option(None, "--frame", help="For .png: which cached frame (default: the middle one)."),
    cache_dir: Optional[Path] = CacheDir,
    backend: str = RunCueOpts["backend"],
    levels: Optional[str] = typer.Option(None, "--levels", help="Feature-map levels (default: as extract, per backend)."),
    joints: Optional[str] = typer.Option(None, "--joints", help="Cue joints: body13, all or indices (default: as extract)."),
    heatmap_patch: Optional[int] = typer.Option(None, "--heatmap-patch", help="P x P heatmap patch (default: as extract)."),
    stride: int = RunCueOpts["stride"],
    max_frames: Optional[int] = RunCueOpts["max_frames"],
    models_dir: Optional[Path] = RunCueOpts["models_dir"],
) -> None:
    """Draw what stage 1 kept on the video's frames: the tracked skeleton(s) with person ids and,
    per cue joint, the heatmap peak (colour) and feature norm (size). Cues come from the cache
    (dataset 'adhoc', shared with predict: a cached video runs no pose model)."""
    from posebridge.stages.extract.adhoc import adhoc_config
    from posebridge.stages.extract.render import render as run_render

    config = adhoc_config(backend=backend, levels=_split_levels(levels or DEFAULT_LEVELS.get(backend)),
                          joints=parse_joints(joints) if joints else None,
                          heatmap_patch=heatmap_patch, stride=stride, max_frames=max_frames)
    summary = run_render(video, out, config=config, cache_dir=cache_dir, models_dir=models_dir, size=size,
                         still_frame=frame)
    typer.echo(f"wrote {summary.out}: {summary.frames} frame(s), {summary.persons} person(s) tracked"
               + ("" if summary.extracted else " (cues from the cache)"))


@app.command()
def demo(
    videos: Optional[Path] = typer.Option(None, "--videos", help="Demo videos (default: the clone's "
                                          "assets/videos/demo, fetched by `make media`; else ./assets/videos/demo)."),
    cache_dir: Optional[Path] = CacheDir,
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Run folders (default: $POSEBRIDGE_RUNS, "
                                            "else the clone's outputs/runs, else ./outputs/runs)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Training epochs of the heads, per run "
                                         f"({default_of('epochs')})."),
) -> None:
    """The main job on the embedded default: extract the demo videos, then train + evaluate the
    SYNTHETIC zero-shot split with and without cues, and print the results table."""
    from posebridge.stages import paths
    from posebridge.pipeline.demo import run_demo

    if videos is None:
        videos = (paths.source_checkout() or Path(".")) / "assets" / "videos" / "demo"
    for line in run_demo(videos, cache_dir=cache_dir, runs_dir=runs_dir, epochs=epochs):
        typer.echo(line)


@app.command()
def synthetic(
    cache_dir: Optional[Path] = CacheDir,
    clips_per_class: int = typer.Option(None, "--clips-per-class", min=1, show_default=False,
                                        help="Clips per class, 36 classes (default: the demo's)."),
    seed: int = typer.Option(None, "--seed", show_default=False, help="Generator seed (default: the demo's)."),
) -> None:
    """Write the SYNTHETIC benchmark's cue store (procedural skeletons and cues, no video; checks the
    mechanics of stage 2, not the science) into the cache, as `extract` writes a video set's. Only
    missing clips are generated; then `posebridge train --split synthetic_zsl` finds it."""
    from posebridge.cache.store import CueStore, list_stores
    from posebridge.stages import paths
    from posebridge.stages.extract import synthetic as generator

    store = generator.write_synthetic_store(
        paths.cache_root(cache_dir), generator.CLIPS_PER_CLASS if clips_per_class is None else clips_per_class,
        generator.SEED if seed is None else seed)
    typer.echo(f"synthetic store: {store} ({len(CueStore.open(store).clips())} clips)")
    others = [p for p in list_stores(paths.cache_root(cache_dir), generator.DATASET) if p != store]
    if others:  # other sizes or seeds, or an older generator: training by dataset name would have to choose
        typer.echo(f"train on it: posebridge train --split {generator.SPLIT_NAME} --store {store}  "
                   f"({len(others)} other synthetic store(s) beside it: {', '.join(str(p) for p in others)}; "
                   f"remove those no run needs)")
        return
    where = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    typer.echo(f"train on it: posebridge train --split {generator.SPLIT_NAME}{where}  "
               f"(or --store {store} --split-file {store / generator.SPLIT_FILE})")


@app.command()
def setup(
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Where to put the models (default: "
                                              "$POSEBRIDGE_MODELS, else ~/.cache/posebridge/models, honouring "
                                              "$XDG_CACHE_HOME)."),
    source: Optional[Path] = typer.Option(None, "--from", help="A folder holding the two model files, or the "
                                          "mediapipe-0.10.21 wheel file (default: pip downloads that wheel)."),
) -> None:
    """Install the two pinned BlazePose models (sha256-checked) where `extract` finds them from any
    directory. They come out of the MediaPipe 0.10.21 wheel (Apache-2.0), fetched by pip."""
    from posebridge.stages.extract.setup_models import setup_models

    setup_models(models_dir, source, echo=typer.echo)


def main(argv: list[str] | None = None) -> None:
    """Entry point. Usage errors and UserErrors: one line on stderr, exit 1, no traceback."""
    # typer >= 0.20 vendors click; its exceptions live there.
    from typer._click import exceptions as click

    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
    except click.NoArgsIsHelpError:
        sys.exit(0)  # the help text is already printed
    except click.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
        typer.echo(f"error: {err.format_message()}{hint}", err=True)
        sys.exit(1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
