"""Stage 1 for a few loose video files (`posebridge predict` / `render`), through the normal cache.

The extractor's input is a folder; the files given on the command line may live anywhere and share
names. So each call builds a throw-away folder of links named by the file's content id and
extracts that folder into the cache's `adhoc` dataset. The clip id is then the content id: the
same bytes under any path or name are one clip, and a second call (same bytes, same extractor
settings, hence the same store fingerprint) finds every clip cached and runs no pose model.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from posebridge.cache.store import CueStore
from posebridge.stages.extract.config import CueConfig, ExtractConfig, RunSettings
from posebridge.stages.datasets.base import MEDIA_SUFFIXES
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import content_id

ADHOC_DATASET = "adhoc"


@dataclass
class AdhocClips:
    store: Path
    clip_ids: list[str]  # one per input video, in input order
    extracted: int  # clips the pose model ran on in this call
    cached: int  # clips found in the cache
    model_calls: int  # detector + landmark invocations in this call (0 when all were cached)


def adhoc_config(*, backend: str = "embedded", levels: tuple[str, ...] | None = None,
                 joints: tuple[int, ...] | None = None, heatmap_patch: int | None = None, stride: int = 1,
                 max_frames: int | None = None, defaults: dict | None = None) -> ExtractConfig:
    """Extractor settings: what is given, else the cue settings in `defaults` (a store layout, e.g.
    a trained run's), else extract's defaults. The backend checks levels and joints when built."""
    for flag, value in (("--stride", stride), ("--heatmap-patch", heatmap_patch or 1),
                        ("--max-frames", max_frames if max_frames is not None else 1)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    layout, default = defaults or {}, CueConfig()
    cues = CueConfig(levels=tuple(levels or layout.get("levels") or default.levels),
                     joints=tuple(joints or _blazepose_joints(layout) or default.joints),
                     heatmap_patch=heatmap_patch or layout.get("heatmap_patch") or default.heatmap_patch,
                     feature_dtype=layout.get("feature_dtype") or default.feature_dtype)
    return ExtractConfig(backend=backend, cues=cues, stride=stride, max_frames=max_frames)


def _blazepose_joints(layout: dict) -> tuple[int, ...] | None:
    """A layout's cue joints as BlazePose-33 indices (what --joints takes), matched by name; None
    when the layout has none or names a joint BlazePose lacks (the layout check then explains)."""
    from posebridge.cache.schema import BLAZEPOSE33

    names = [layout["joint_names"][j] for j in layout.get("cue_joints") or ()]
    if not names or any(n not in BLAZEPOSE33.joint_names for n in names):
        return None
    return tuple(BLAZEPOSE33.joint_names.index(n) for n in names)


def check_videos(videos: list[Path]) -> list[Path]:
    """The files as given, or a one-line error naming the first that is missing or not a video."""
    if not videos:
        raise UserError("no video given; pass one or more video files")
    out = []
    for video in map(Path, videos):
        if not video.is_file():
            raise UserError(f"video {video} does not exist (or is not a file); check the path")
        if video.suffix.lower() not in MEDIA_SUFFIXES:
            raise UserError(f"{video} is not a video or image file by its extension; expected one of "
                            f"{', '.join(sorted(MEDIA_SUFFIXES))}")
        out.append(video)
    return out


def clip_id_for(video: Path) -> str:
    """The cache clip id of a loose video: its content id with the (lower-case) suffix kept, which
    the decoder uses to tell still images from videos."""
    return f"{content_id(video)}{video.suffix.lower()}"


def extract_videos(videos: list[Path], *, config: ExtractConfig, cache_dir: Path | None = None,
                   models_dir: Path | None = None, run: RunSettings = RunSettings()) -> AdhocClips:
    """Extract `videos` (cached clips are skipped) and return where their cues are.

    A file that cannot be decoded is a UserError naming it; clips extracted before it stay cached."""
    from posebridge.stages.extract.run import extract

    videos = check_videos(videos)
    ids = [clip_id_for(v) for v in videos]
    links = Path(tempfile.mkdtemp(prefix="posebridge-adhoc-"))
    try:
        for video, clip_id in zip(videos, ids):
            link = links / clip_id
            if not link.exists():  # the same bytes given twice are one clip
                link.symlink_to(video.resolve())
        summary = extract(links, ADHOC_DATASET, cache_dir=cache_dir, config=config, run=run,
                          models_dir=models_dir, progress=False)
    finally:
        shutil.rmtree(links, ignore_errors=True)
    if summary.failures:
        by_id = dict(zip(ids, videos))
        first = summary.failures[0]
        raise UserError(f"{by_id.get(first['clip_id'], first['clip_id'])}: cannot be read ({first['reason']}); "
                        f"check or re-encode the file (the other clips are cached)")
    stored = {r.clip_id for r in CueStore.open(summary.store).clips()}
    lost = [str(v) for v, c in zip(videos, ids) if c not in stored]
    if lost:  # extract() reports every clip it could not write; this guards the contract
        raise UserError(f"{lost[0]}: not in the cache {summary.store} after extraction; run again")
    return AdhocClips(store=summary.store, clip_ids=ids, extracted=summary.done, cached=summary.skipped,
                      model_calls=summary.model_calls)
