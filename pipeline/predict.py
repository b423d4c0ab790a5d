"""Open-vocabulary prediction: a trained run, any videos, any class texts -> ranked classes per clip.

The videos go through stage 1 into the cache (stages/extract/adhoc.py: same fingerprint rules as
`posebridge extract`, so a second call runs no pose model). The class texts are turned into
prototypes exactly as in training (open_clip's zero-shot classifier: the run's own prompt
templates, embedded by the run's own text encoder, averaged and renormalised; an optional
description takes the description slot), and every clip is scored with the run's heads, with
the run's ZSL hubness correction (stages/eval/hubness.py: a class whose prototype lies among the
run's training clips, a seen class among them, is lowered as the ZSL metric lowers it; a run
trained with --hubness none ranks by the plain scores).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posebridge.stages import paths
from posebridge.stages.extract.config import ExtractConfig
from posebridge.cache.errors import UserError
from posebridge.stages.train.text import ClassTexts, prompts

# The parts of a cache layout that decide whether a run's heads can read a store.
SKELETON_KEYS = ("joint_names",)
CUE_KEYS = ("cue_joints", "levels", "feature_channels", "heatmap_patch", "heatmap_kind")
_DEFAULTS = {"heatmap_kind": "sigmoid"}  # what a layout that does not say it means


# --- class texts ------------------------------------------------------------------------------

def _class(name: str, description: str | None, source: str) -> ClassTexts:
    name = " ".join(name.split())
    if not name:
        raise UserError(f"{source}: an empty class name; give one name per class")
    description = " ".join(description.split()) if description else None
    return ClassTexts(name=name, templates=prompts(name), description=description or None)


def _unique(classes: list[ClassTexts], source: str) -> list[ClassTexts]:
    seen: set[str] = set()
    for c in classes:
        if c.name.lower() in seen:
            raise UserError(f"{source}: class '{c.name}' is given twice; give each class once")
        seen.add(c.name.lower())
    if len(classes) < 2:
        raise UserError(f"{source}: {len(classes)} class given; a ranking needs at least 2")
    return classes


def parse_classes(text: str) -> list[ClassTexts]:
    """--classes "drink water;jump up;...": names separated by ';'."""
    return _unique([_class(n, None, "--classes") for n in text.split(";") if n.strip()], "--classes")


def read_classes_file(path: Path) -> list[ClassTexts]:
    """One class per line: the name, then optionally a tab and a description. Blank lines and lines
    starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"classes file {path} does not exist; write one class per line (name<TAB>description)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8, one class per line") from None
    classes = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, description = line.partition("\t")
        classes.append(_class(name, description, str(path)))
    return _unique(classes, str(path))


# --- the trained run --------------------------------------------------------------------------

@dataclass
class TrainedRun:
    path: Path
    config: object  # TrainConfig
    model: torch.nn.Module  # PoseBridge, in eval mode
    layout: dict | None  # the training store's layout; None for runs that did not record it
    device: torch.device
    encoder: tuple | None = None  # (frozen Shift-GCN, feature time steps) for --skeleton-encoder shiftgcn


def resolve_run_dir(run: Path) -> Path:
    """A run folder (holds checkpoint.pt), or a settings folder holding exactly the seed-* run
    folders of one training call, of which the lowest seed is taken."""
    from posebridge.stages.train.checkpoint import CHECKPOINT

    run = Path(run)
    if not run.exists():
        raise UserError(f"run folder {run} does not exist; pass a folder made by `posebridge train` / `make demo`, "
                        f"e.g. outputs/runs/<split>/<settings>/seed-0")
    if (run / CHECKPOINT).is_file():
        return run
    seeds = sorted(run.glob(f"seed-*/{CHECKPOINT}"), key=lambda p: int(p.parent.name[5:]) if
                   p.parent.name[5:].isdigit() else math.inf)
    if seeds:
        return seeds[0].parent
    raise UserError(f"{run} is not a finished run folder (no {CHECKPOINT}); pass a folder made by "
                    f"`posebridge train` / `make demo`, e.g. outputs/runs/<split>/<settings>/seed-0")


def load_run(run: Path, device: str | None = None) -> TrainedRun:
    from posebridge.stages.train.checkpoint import CHECKPOINT
    from posebridge.stages.train.encoders.frozen import encoder_from_record
    from posebridge.stages.train.trained import load_trained

    if device not in (None, "auto", "cpu", "cuda"):
        raise UserError(f"--device '{device}' is unknown; use auto, cpu or cuda")
    run = resolve_run_dir(run)
    trained = load_trained(run / CHECKPOINT, device)
    ckpt, cfg = trained.checkpoint, trained.config
    if ckpt["fingerprints"].get("feature_folder"):
        raise UserError(f"{run} was trained on a feature folder (--features): its heads read precomputed "
                        f"features, not clips; use a run trained on a cue cache")
    encoder = None
    if cfg.skeleton_encoder == "shiftgcn":  # its heads read a frozen Shift-GCN's features of each clip
        if ckpt.get("skeleton_encoder") is None:
            raise UserError(f"{run} uses --skeleton-encoder shiftgcn but its checkpoint predates storing the "
                            f"encoder; train it again (the cached encoder is reused) to predict with it")
        encoder = encoder_from_record(ckpt["skeleton_encoder"], trained.device)
    return TrainedRun(run, cfg, trained.model, ckpt["fingerprints"].get("data_layout"), trained.device, encoder)


# --- layouts ----------------------------------------------------------------------------------

def _plain_layout(layout) -> dict:
    return dataclasses.asdict(layout) if dataclasses.is_dataclass(layout) else dict(layout)


def describe_layout(layout: dict) -> str:
    """One short line: skeleton size, cue joints, levels, channels, heatmap patch."""
    joints = layout.get("joint_names") or []
    return (f"{layout.get('skeleton') or str(len(joints)) + ' joints'}, cues at joints "
            f"{','.join(map(str, layout.get('cue_joints', [])))}, levels {','.join(layout.get('levels', []))}, "
            f"{layout.get('feature_channels')} channels, {layout.get('heatmap_patch')}x{layout.get('heatmap_patch')} "
            f"{layout.get('heatmap_kind', 'sigmoid')} heatmap patch")


def check_layout(run: TrainedRun, extractor_layout: dict) -> None:
    """The run's heads must read what the extractor writes: same skeleton, and when the run uses
    cues, the same cue joints, levels, channels and patch. A one-line error names both layouts."""
    args = run.model.args
    keys = SKELETON_KEYS + (CUE_KEYS if args.cues != "none" else ())
    if run.layout is not None:
        differ = [k for k in keys if _norm(run.layout.get(k, _DEFAULTS.get(k))) != _norm(extractor_layout.get(k, _DEFAULTS.get(k)))]
    else:  # an older run: only the shapes its weights were built for are known
        shapes = {"joint_names": (args.num_joints, len(extractor_layout["joint_names"])),
                  "cue_joints": (args.cue_joints, len(extractor_layout["cue_joints"])),
                  "feature_channels": (args.feature_channels, extractor_layout["feature_channels"]),
                  "heatmap_patch": (args.heatmap_size, extractor_layout["heatmap_patch"] ** 2)}
        differ = [k for k in keys if k in shapes and shapes[k][0] != shapes[k][1]]
    if differ:
        trained = describe_layout(run.layout) if run.layout else f"{args.num_joints} joints (older run, no layout)"
        raise UserError(f"run {run.path} was trained on cue layout [{trained}] but the extractor writes "
                        f"[{describe_layout(extractor_layout)}] ({', '.join(differ)} differ); extract with the "
                        f"run's settings (--levels/--joints/--heatmap-patch/--backend) or use a run trained on "
                        f"this extractor's cache")


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def extractor_layout(config: ExtractConfig, models_dir: Path | None = None) -> dict:
    """The layout a store of this extractor gets (builds the backend once; no frame is processed)."""
    from posebridge.stages.extract.backends.registry import make_backend
    from posebridge.stages.extract.run import cache_layout

    backend = make_backend(config.backend, config, models_dir=paths.models_root(models_dir), num_threads=1)
    return _plain_layout(cache_layout(config, backend))


# --- prediction -------------------------------------------------------------------------------

@dataclass
class ClipPrediction:
    video: str
    clip_id: str
    frames: int
    person_frames: int  # frames in which the pose model found a person
    ranking: list[dict]  # [{rank, class, probability, score}], best first, top_k of them

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Prediction:
    run: str
    text_encoder: str
    classes: list[str]
    clips: list[ClipPrediction]
    stage1: dict  # store, extracted, cached, model_calls

    def to_dict(self) -> dict:
        return {"run": self.run, "text_encoder": self.text_encoder, "classes": self.classes,
                "stage1": self.stage1, "clips": [c.to_dict() for c in self.clips]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """A ranked table per clip, for people."""
        lines = [f"run {self.run} (text encoder {self.text_encoder}); {len(self.classes)} classes; stage 1: "
                 f"{self.stage1['extracted']} extracted, {self.stage1['cached']} cached"]
        width = max(len("class"), *(len(r["class"]) for c in self.clips for r in c.ranking))
        for clip in self.clips:
            found = "" if clip.person_frames else "; NO PERSON FOUND, the ranking means nothing"
            lines += ["", f"{clip.video}  ({clip.frames} frames, person in {clip.person_frames}{found})",
                      f"  {'rank':>4}  {'class':<{width}}  {'prob':>6}  {'score':>7}"]
            lines += [f"  {r['rank']:>4}  {r['class']:<{width}}  {r['probability']:>6.3f}  {r['score']:>7.3f}"
                      for r in clip.ranking]
        return "\n".join(lines)


def rank(logits: np.ndarray, names: list[str], top_k: int) -> list[list[dict]]:
    """Per row of scaled scores [N, K]: the top_k classes with softmax probability, best first
    (ties keep the classes' order)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    out = []
    for row, p in zip(logits, probs):
        order = np.argsort(-row, kind="stable")[:top_k]
        out.append([{"rank": i + 1, "class": names[k], "probability": round(float(p[k]), 6),
                     "score": round(float(row[k]), 6)} for i, k in enumerate(order)])
    return out


def score_clips(run: TrainedRun, store: Path, clip_ids: list[str], classes: list[ClassTexts],
                cache_dir: Path | None = None) -> np.ndarray:
    """Scaled class scores [len(clip_ids), len(classes)] of the run's heads."""
    from posebridge.stages.train.data import load_store
    from posebridge.stages.train.view_align import align_views, chosen
    from posebridge.stages.eval.embedding import embed
    from posebridge.stages.eval.hubness import load_reference
    from posebridge.stages.eval.scoring import score
    from posebridge.stages.train.loop import class_text_tensors, to_device
    from posebridge.stages.train.text_bank import build_text_bank
    from posebridge.stages.train.text_encoders import make_text_encoder

    cfg = run.config
    unique = list(dict.fromkeys(clip_ids))  # a video given twice is one clip, scored once
    # the run's own input preparation (a store's clips are never turned: the line says so, on stderr,
    # so that --json output stays JSON)
    dataset = align_views(load_store(store, cfg.num_frames, clip_ids=unique), cfg.view_align, "the new clips",
                          echo=lambda line: print(line, file=sys.stderr),
                          say_not_applicable=chosen(cfg.view_align, cfg.given))
    bank = build_text_bank(classes, make_text_encoder(cfg.text_encoder), paths.cache_root(cache_dir))
    data = to_device(dataset, cfg.cues, run.device)
    if run.encoder is not None:  # the run's own frozen encoder, as its training features were made
        from posebridge.stages.train.encoders.frozen import extract

        from posebridge.stages.train.loop import normalise_cells

        model, steps = run.encoder
        joint = extract(model, data.keypoints, data.confidence, steps, run.device)
        if cfg.feature_norm == "cell_l2":  # as the run's training features were normalised
            joint = normalise_cells(joint)
        data = dataclasses.replace(data, joint_features=joint.to(run.device))
    visual = embed(run.model, data, np.arange(len(dataset)))
    texts = class_text_tensors(bank, run.device)
    # score() is in cosine units (stages/eval/scoring.py); the run's learned scale turns them into
    # the logits its softmax was trained on, so the probabilities are the model's own.
    # the run's hubness correction, from the training clips' embeddings it saved (stages/eval/hubness.py)
    reference = load_reference(run.path, run.device) if cfg.hubness == "csls" else None
    logits = score(run.model, visual, texts, np.arange(len(classes)), cfg, reference=reference) \
        * float(run.model.scale().detach())
    return logits[[unique.index(c) for c in clip_ids]]


def predict(videos: list[Path], run_dir: Path, classes: list[ClassTexts], *, top_k: int = 5,
            cache_dir: Path | None = None, models_dir: Path | None = None, backend: str = "embedded",
            levels: str | None = None, joints: str | None = None, heatmap_patch: int | None = None,
            stride: int = 1, max_frames: int | None = None, device: str | None = None) -> Prediction:
    """Rank `classes` for every video with the trained run at `run_dir` (see the module docstring)."""
    from posebridge.cache.store import CueStore
    from posebridge.stages.extract.adhoc import adhoc_config, check_videos, extract_videos

    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    videos = check_videos(videos)
    run = load_run(run_dir, device)
    # The run's own cue settings unless overridden, so its heads read what they were trained on.
    config = adhoc_config(backend=backend, levels=levels, joints=joints, heatmap_patch=heatmap_patch, stride=stride,
                          max_frames=max_frames, defaults=run.layout)
    check_layout(run, extractor_layout(config, models_dir))  # before any pose work
    clips = extract_videos(videos, config=config, cache_dir=cache_dir, models_dir=models_dir)
    logits = score_clips(run, clips.store, clips.clip_ids, classes, cache_dir)
    names = [c.name for c in classes]
    store = CueStore.open(clips.store)
    out = []
    for video, clip_id, ranking in zip(videos, clips.clip_ids, rank(logits, names, min(top_k, len(names)))):
        presence = store.read_clip(clip_id).score
        out.append(ClipPrediction(video=str(video), clip_id=clip_id, frames=int(presence.shape[0]),
                                  person_frames=int(np.count_nonzero(presence.reshape(len(presence), -1).max(axis=1) > 0)),
                                  ranking=ranking))
    stage1 = {"store": str(clips.store), "extracted": clips.extracted, "cached": clips.cached,
              "model_calls": clips.model_calls}
    return Prediction(run=str(run.path), text_encoder=run.config.text_encoder, classes=names, clips=out,
                      stage1=stage1)
