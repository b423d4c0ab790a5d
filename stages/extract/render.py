"""`posebridge render`: what stage 1 kept, drawn on the video's own frames.

The cues are read back from the cache (the video goes through stage 1 first, cached like any
clip), so the picture shows exactly what stage 2 trains on: the tracked skeleton(s) with their
person ids, and at every cue joint its cue strength: the circle's colour is the heatmap peak
(the pose model's confidence that the joint is there, 0..1), its size the feature norm (how much
the feature maps respond around the joint, relative to the clip).

Output by suffix: .mp4 (H.264 through PyAV), .gif (Pillow, which matplotlib brings along), .png
(one still frame, for documentation).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from posebridge.cache.store import KEYPOINT_CHANNELS, CueStore
from posebridge.cache.atomic import atomic_path
from posebridge.stages.extract.config import ExtractConfig
from posebridge.cache.errors import UserError

SUFFIXES = (".mp4", ".gif", ".png")
MIN_VISIBILITY = 0.3  # joints below it are not drawn (stage 2 barely trusts them either)
# Person colours (BGR is not used anywhere: frames are RGB throughout).
PERSON_COLOURS = ((255, 255, 255), (255, 200, 0), (0, 220, 255), (255, 90, 200))
NORM_PERCENTILE = 95  # feature norms are shown relative to this percentile of the clip's norms
_X, _Y, _VIS = (KEYPOINT_CHANNELS.index(c) for c in ("x", "y", "visibility"))


@dataclass
class ClipCues:
    """One clip's cached cues with an explicit person axis M (the one place that adds it)."""

    keypoints: np.ndarray  # [T, M, V, 5]
    score: np.ndarray  # [T, M]
    heatmap_peak: np.ndarray  # [T, M, Vc] max of each cue joint's heatmap patch, 0..1
    feature_norm: np.ndarray  # [T, M, Vc] L2 norm of each cue joint's feature vector
    cue_joints: tuple[int, ...]  # indices into joint_names
    joint_names: tuple[str, ...]
    skeleton: str  # registry name


def clip_cues(store: CueStore, clip_id: str) -> ClipCues:
    arrays = store.read_clip(clip_id)
    kp, score, feats, heats = arrays.keypoints, arrays.score, arrays.features, arrays.heatmaps
    if kp.ndim == 3:  # a reader that hands out one person per frame: the person axis goes here
        kp, score, feats, heats = kp[:, None], score[:, None], feats[:, None], heats[:, None]
    layout = store.layout
    return ClipCues(keypoints=kp, score=score, heatmap_peak=heats.reshape(*heats.shape[:3], -1).max(axis=-1),
                    feature_norm=np.linalg.norm(feats, axis=-1), cue_joints=tuple(layout.cue_joints),
                    joint_names=tuple(layout.joint_names), skeleton=layout.skeleton)


def skeleton_parents(name: str) -> tuple[int, ...]:
    """Parent of each joint of a layout: a registered name (a store's skeleton) or a .json layout file."""
    from posebridge.cache.layouts import load_layout

    return load_layout(name).parents


def _colour(value: float) -> tuple[int, int, int]:
    """Heatmap peak 0..1 -> RGB on matplotlib's viridis-like OpenCV map."""
    bgr = cv2.applyColorMap(np.uint8([[round(255 * float(np.clip(value, 0, 1)))]]), cv2.COLORMAP_VIRIDIS)[0, 0]
    return int(bgr[2]), int(bgr[1]), int(bgr[0])


def draw_frame(rgb: np.ndarray, cues: ClipCues, t: int, norm_ref: float, parents: tuple[int, ...]) -> np.ndarray:
    """The frame (already resized) with frame t's skeletons, person ids and cue circles drawn on it."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    unit = max(1, round(min(h, w) / 200))  # line width, scaled with the picture
    for m in range(cues.keypoints.shape[1]):
        if cues.score[t, m] <= 0:
            continue  # an empty person slot
        kp = cues.keypoints[t, m]
        xy = np.stack([kp[:, _X] * w, kp[:, _Y] * h], axis=1)
        ok = kp[:, _VIS] >= MIN_VISIBILITY
        colour = PERSON_COLOURS[m % len(PERSON_COLOURS)]
        for child, parent in enumerate(parents):
            if child != parent and ok[child] and ok[parent]:
                cv2.line(out, _pt(xy[child]), _pt(xy[parent]), colour, unit, cv2.LINE_AA)
        for c, joint in enumerate(cues.cue_joints):
            if not ok[joint]:
                continue
            relative = float(np.clip(cues.feature_norm[t, m, c] / norm_ref, 0, 1.5)) if norm_ref > 0 else 0.0
            radius = round(unit * (2 + 5 * relative))
            cv2.circle(out, _pt(xy[joint]), radius, _colour(cues.heatmap_peak[t, m, c]), -1, cv2.LINE_AA)
            cv2.circle(out, _pt(xy[joint]), radius, colour, max(1, unit // 2), cv2.LINE_AA)
        if ok.any():
            top = xy[ok][np.argmin(xy[ok, 1])]
            _text(out, f"person {m}  {cues.score[t, m]:.2f}", (int(top[0]) - 30 * unit, int(top[1]) - 8 * unit),
                  colour, unit)
    _legend(out, t, unit)
    return out


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def _text(img: np.ndarray, text: str, org: tuple[int, int], colour, unit: int) -> None:
    scale = 0.35 * unit
    org = (max(2, org[0]), max(12 * unit, org[1]))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3 * unit, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, unit, cv2.LINE_AA)


def _legend(img: np.ndarray, t: int, unit: int) -> None:
    """Bottom-left: the colour bar of the heatmap peak and what the circle size means."""
    h = img.shape[0]
    bar_w, bar_h = 60 * unit, 5 * unit
    x0, y0 = 4 * unit, h - 22 * unit
    ramp = cv2.applyColorMap(np.linspace(0, 255, bar_w).astype(np.uint8)[None].repeat(bar_h, 0), cv2.COLORMAP_VIRIDIS)
    img[y0:y0 + bar_h, x0:x0 + bar_w] = ramp[..., ::-1]
    _text(img, "heatmap peak 0..1", (x0 + bar_w + 3 * unit, y0 + bar_h), (255, 255, 255), unit)
    _text(img, f"size: feature norm  frame {t}", (x0, h - 6 * unit), (255, 255, 255), unit)


def _resized(rgb: np.ndarray, size: int) -> np.ndarray:
    """Longest side `size`, both sides even (H.264's 4:2:0 needs it)."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(2, int(round(h * scale / 2)) * 2), max(2, int(round(w * scale / 2)) * 2)
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)


def _write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Encodes as frames come (a long video is never held in memory); returns the frame count."""
    import av

    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            for rgb in frames:
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.height, stream.width = rgb.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "23", "preset": "veryfast"}
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                count += 1
            if stream is not None:
                container.mux(stream.encode())
        if count == 0:
            raise UserError(f"{path}: no frame decoded for rendering; check the video")
    return count


def _write_gif(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    from PIL import Image

    # Quantised as they come: a palette frame is a third of the RGB one.
    images = [Image.fromarray(rgb).quantize(colors=128, method=Image.Quantize.MEDIANCUT) for rgb in frames]
    if not images:
        raise UserError(f"{path}: no frame decoded for rendering; check the video")
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0, optimize=False)
    return len(images)


def _write_png(path: Path, frames: Iterator[np.ndarray]) -> int:
    from PIL import Image

    frame = next(iter(frames), None)
    if frame is None:
        raise UserError(f"{path}: no frame decoded for rendering; check the video")
    with atomic_path(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG", optimize=True)
    return 1


@dataclass
class RenderSummary:
    out: Path
    frames: int
    persons: int  # person slots that hold someone in at least one frame
    extracted: int  # 1 when stage 1 ran on the video in this call, 0 when it was cached


def render(video: Path, out: Path, *, config: ExtractConfig = ExtractConfig(), cache_dir: Path | None = None,
           models_dir: Path | None = None, size: int = 640, still_frame: int | None = None) -> RenderSummary:
    """Draw the cached cues of `video` onto its frames and write `out` (.mp4, .gif or one .png frame)."""
    from posebridge.stages.extract.adhoc import extract_videos
    from posebridge.stages.extract.video import iter_frames, probe

    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise UserError(f"--out {out}: write .mp4, .gif or .png (one still frame), not '{out.suffix or 'no suffix'}'")
    if size < 16:
        raise UserError(f"--size must be >= 16 pixels, got {size}")
    clips = extract_videos([Path(video)], config=config, cache_dir=cache_dir, models_dir=models_dir)
    store = CueStore.open(clips.store)
    cues = clip_cues(store, clips.clip_ids[0])
    parents = skeleton_parents(cues.skeleton)
    present = cues.score > 0
    norms = cues.feature_norm[present]
    norm_ref = float(np.percentile(norms, NORM_PERCENTILE)) if norms.size else 0.0
    total = len(cues.score)
    if still_frame is not None and not 0 <= still_frame < total:
        raise UserError(f"--frame {still_frame} is outside the clip's {total} cached frames (0..{total - 1})")
    wanted = still_frame if still_frame is not None else total // 2  # the still of a .png
    suffix = out.suffix.lower()

    def drawn() -> Iterator[np.ndarray]:
        for t, frame in enumerate(iter_frames(video, stride=config.stride, max_frames=config.max_frames)):
            if t >= total:  # the cache holds what stage 1 decoded; never draw past it
                return
            if suffix == ".png" and t != wanted:
                continue
            yield draw_frame(_resized(frame.to_rgb(), size), cues, t, norm_ref, parents)
            if suffix == ".png":
                return  # the still is drawn: stop decoding

    fps = probe(video).fps / config.stride or 10.0  # a still image: 10 frames/s
    if suffix == ".mp4":
        count = _write_mp4(out, drawn(), fps)
    elif suffix == ".gif":
        count = _write_gif(out, drawn(), fps)
    else:
        count = _write_png(out, drawn())
    return RenderSummary(out=out, frames=count, persons=int(present.any(axis=0).sum()), extracted=clips.extracted)
