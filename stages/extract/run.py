"""Stage 1 end to end: videos -> HPE -> pose-anchored cues -> zarr cache.

Resumable by construction: clips are written in whole shards that appear atomically, a clip
counts as done when its content id is in a complete shard, and a re-run skips done clips. A
kill -9 loses at most the shard being buffered, which the next run recomputes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from importlib import metadata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posebridge.cache.manifest import FailureLog
from posebridge.cache.schema import BLAZEPOSE33, CacheLayout, skeleton_named_by
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, store_dir
from posebridge.cache.writer import ShardWriter
from posebridge.pipeline import paths
from posebridge.pipeline.atomic import atomic_path
from posebridge.pipeline.config import ExtractConfig, RunSettings
from posebridge.pipeline.datasets import ClipSpec, scan
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.fingerprint import canonical_json, content_id, file_sha256, fingerprint
from posebridge.stages.extract.backends.base import make_backend
from posebridge.stages.extract.tracking import main_actor_order
from posebridge.stages.extract.video import VideoError, iter_frames, probe


@dataclass
class ExtractSummary:
    store: Path
    done: int = 0
    skipped: int = 0
    failed: int = 0
    no_person: int = 0
    frames: int = 0
    seconds: float = 0.0
    model_calls: int = 0  # landmark + detector invocations in this run
    bytes_per_clip: float = 0.0
    bytes_per_300_frames: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [
            f"store: {self.store}",
            f"clips: {self.done} extracted, {self.skipped} already cached, {self.failed} failed"
            + (f", {self.no_person} with no person found" if self.no_person else ""),
            (f"speed: {self.frames} frames in {self.seconds:.1f} s = {self.frames_per_second:.1f} frames/s"
             if self.frames else "speed: nothing new to extract"),
            f"cache: {self.bytes_per_clip / 1e6:.3f} MB per clip, "
            f"{self.bytes_per_300_frames / 1e6:.3f} MB per 300 frames",
        ]
        for f in self.failures[:10]:
            out.append(f"failed: {f['clip_id']}: {f['reason']}")
        if self.failed > 10:
            out.append(f"... {self.failed - 10} more in {self.store / 'failures.jsonl'}")
        return out


# Libraries whose version can change the numbers a clip gets (decoder, colour conversion, kernels).
RUNTIME_PACKAGES = ("ai-edge-litert", "av", "opencv-python-headless", "numpy")


def extractor_identity(config: ExtractConfig, backend) -> dict:
    """What the cache fingerprint covers: output settings, model file hashes, the backend's own
    output-shaping constants and the versions of the libraries that compute the numbers."""
    models = {name: file_sha256(path) for name, path in sorted(backend.model_files().items())}
    runtime = {pkg: metadata.version(pkg) for pkg in RUNTIME_PACKAGES}
    return {**config.output_settings(), "models": models, "backend_settings": getattr(backend, "settings", dict)(),
            "runtime": runtime}


def cache_layout(config: ExtractConfig, backend) -> CacheLayout:
    """The store's layout: the backend's skeleton (found in the registry by its joint names), cues, M.

    --joints are BlazePose-33 indices; the layout holds them as indices into the store's own joints
    (matched by name), so a COCO-17 store's cue joints index its 17 keypoints."""
    names = tuple(backend.joint_names)
    wanted = [BLAZEPOSE33.joint_names[j] for j in config.cues.joints]
    if missing := [n for n in wanted if n not in names]:
        raise UserError(f"--joints: the {backend.name} backend has no {', '.join(missing)}; use --joints body13")
    return CacheLayout(
        skeleton=skeleton_named_by(names, f"the {backend.name} backend").name,
        joint_names=names,
        cue_joints=tuple(names.index(n) for n in wanted),
        levels=tuple(config.cues.levels),
        feature_channels=backend.feature_channels(),
        heatmap_patch=config.cues.heatmap_patch,
        feature_dtype=config.cues.feature_dtype,
        # Until every backend states it (the mmpose backend does not yet): sigmoid heatmaps.
        heatmap_kind=getattr(backend, "heatmap_kind", "sigmoid"),
        max_persons=config.max_persons,
    )


def _with_person_axis(cues, max_persons: int):
    """FrameCues as schema v2 holds them. A backend that still returns one person per frame
    ([V, 5] keypoints, a float score: the mmpose backend until it tracks people) gets slot 0 of M."""
    if np.ndim(cues.keypoints) == 3:
        return cues

    def slots(a):
        out = np.zeros((max_persons, *np.shape(a)), np.float32)
        out[0] = a
        return out
    return type(cues)(slots(cues.keypoints), slots(cues.score), slots(cues.features), slots(cues.heatmaps))


def _labels(clip: ClipSpec | ClipRecord) -> str:
    return canonical_json([clip.label, clip.label_name, clip.meta])


def _content_ids(specs: list[ClipSpec], memo_path: Path) -> dict[str, str]:
    """content_id per clip_id, memoised on (size, mtime) so re-runs do not re-read every video.

    The memo only saves reading; the ids themselves depend on bytes alone.
    """
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    out, changed = {}, False
    for spec in specs:
        try:
            st = os.stat(spec.path)
        except OSError:
            continue  # vanished file: the extractor reports it
        key = [st.st_size, st.st_mtime_ns]
        hit = memo.get(spec.clip_id)
        if hit and hit[:2] == key:
            out[spec.clip_id] = hit[2]
        else:
            out[spec.clip_id] = content_id(spec.path)
            memo[spec.clip_id] = [*key, out[spec.clip_id]]
            changed = True
    if changed:
        with atomic_path(memo_path) as tmp:
            tmp.write_text(json.dumps(memo))
    return out


def extract_clip(backend, spec: ClipSpec, cid: str, config: ExtractConfig,
                 frame_bar: tqdm | None = None) -> tuple[ClipRecord, ClipArrays]:
    """Run the backend over one clip's frames; raises VideoError for unreadable input."""
    info = probe(spec.path)
    backend.reset()
    kps, scores, feats, heats = [], [], [], []
    for frame in iter_frames(spec.path, stride=config.stride, max_frames=config.max_frames):
        cues = _with_person_axis(backend.process(frame), config.max_persons)
        kps.append(cues.keypoints)
        scores.append(cues.score)
        feats.append(cues.features)
        heats.append(cues.heatmaps)
        if frame_bar is not None:
            frame_bar.update(1)
    if not kps:
        raise VideoError("no frames decoded")
    # Slots are track identities; main actor first once the whole clip has been seen.
    order = main_actor_order(np.stack(scores))
    arrays = ClipArrays(keypoints=np.stack(kps)[:, order], score=np.stack(scores).astype(np.float32)[:, order],
                        features=np.stack(feats)[:, order], heatmaps=np.stack(heats)[:, order])
    fps = info.fps / config.stride if info.fps else 0.0
    record = ClipRecord(clip_id=spec.clip_id, content_id=cid, label=spec.label, label_name=spec.label_name,
                        fps=fps, height=info.height, width=info.width, meta=dict(spec.meta),
                        num_frames=len(kps))
    return record, arrays


def _bar_off(progress: bool) -> bool | None:
    """None lets tqdm decide: bars on a terminal, none in a log file (cluster jobs, CI)."""
    return None if progress else True


def _work(store_path: Path, jobs: list[tuple[ClipSpec, str]], config: ExtractConfig, run: RunSettings,
          models_dir: Path | None, worker: int, progress: bool, failed_before: set[str],
          backend_options: dict) -> dict:
    """One worker: its own backend and its own shards (one writer per shard, no locks)."""
    if run.workers > 1:
        import cv2

        cv2.setNumThreads(1)  # the cores are already shared out between workers
    store = CueStore.open(store_path)
    failures = FailureLog(store_path)
    backend = make_backend(config.backend, config, models_dir=models_dir, num_threads=run.num_threads,
                           **backend_options)
    stats = {"done": 0, "failed": 0, "no_person": 0, "frames": 0}
    clip_bar = tqdm(total=len(jobs), desc=f"clips[{worker}]" if run.workers > 1 else "clips",
                    unit="clip", disable=_bar_off(progress), position=2 * worker, leave=True)
    frame_bar = tqdm(desc="frames", unit="frame", disable=_bar_off(progress), position=2 * worker + 1, leave=False)
    with ShardWriter(store, shard_clips=run.shard_clips, worker=worker) as writer:
        for spec, cid in jobs:
            clip_bar.set_postfix_str(spec.clip_id[-40:])
            try:
                record, arrays = extract_clip(backend, spec, cid, config, frame_bar)
            except Exception as err:  # one bad file must not end the run; the log keeps the reason
                reason = str(err) if isinstance(err, (VideoError, OSError)) else f"{type(err).__name__}: {err}"
                failures.record(spec.clip_id, str(spec.path), cid, reason)
                stats["failed"] += 1
            else:
                writer.add(record, arrays)
                if spec.clip_id in failed_before:
                    failures.resolve(spec.clip_id, cid)
                stats["done"] += 1
                stats["frames"] += record.num_frames
                stats["no_person"] += int(float(np.max(arrays.score)) <= 0.0)
            clip_bar.update(1)
    frame_bar.close()
    clip_bar.close()
    stats["backend"] = dict(backend.stats)
    return stats


def _work_star(args) -> dict:
    return _work(*args)


def extract(videos: Path, dataset: str, *, cache_dir: Path | None = None,
            config: ExtractConfig = ExtractConfig(), run: RunSettings = RunSettings(),
            annotations: Path | None = None, models_dir: Path | None = None,
            progress: bool = True, backend_options: dict | None = None) -> ExtractSummary:
    """Extract every clip under `videos` into the store of (dataset, extractor fingerprint).

    backend_options go to the backend (mmpose: checkpoint=, model_config=, device=)."""
    backend_options = backend_options or {}
    models_dir = paths.models_root(models_dir)
    backend = make_backend(config.backend, config, models_dir=models_dir, num_threads=1,  # checks the config
                           **backend_options)
    specs = scan(Path(videos), dataset, annotations)
    identity = extractor_identity(config, backend)
    fp = fingerprint(identity)
    path = store_dir(paths.cache_root(cache_dir), dataset, fp)
    store = CueStore.create(path, dataset=dataset, fingerprint=fp, extractor=identity,
                            layout=cache_layout(config, backend))
    del backend  # workers build their own

    ids = _content_ids(specs, path / "content_ids.json")
    # Done = this clip's current bytes are cached with its current labels. Keyed on the id and the
    # bytes, so a re-encoded file is redone and the same bytes under two names stay two clips; a
    # changed label (a class folder added, an annotation file given) redoes the clip too, and the
    # newer shard wins, so old and new label numbering never mix in one store.
    done = {(r.clip_id, r.content_id): _labels(r) for r in store.clips()}
    summary = ExtractSummary(store=path)
    failures = FailureLog(path)
    todo = []
    for spec in specs:
        cid = ids.get(spec.clip_id)
        if cid is None:
            failures.record(spec.clip_id, str(spec.path), None, "file vanished before extraction")
            summary.failed += 1
        elif done.get((spec.clip_id, cid)) == _labels(spec):
            summary.skipped += 1
        else:
            todo.append((spec, cid))

    run = run.resolved(len(todo))
    if progress:  # the settings of this run, once, before the bars (they are saved in the store too)
        print(f"extract {dataset}: {len(specs)} clips ({summary.skipped} cached), {run.workers} worker(s) x "
              f"{run.num_threads} thread(s); store {path}; settings {canonical_json(config.output_settings())}",
              flush=True)
    start = time.perf_counter()
    n_workers = max(1, min(run.workers, len(todo)))
    # Contiguous slices keep each worker's shards holding neighbouring clips.
    bounds = np.linspace(0, len(todo), n_workers + 1).astype(int)
    slices = [todo[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    failed_before = {f["clip_id"] for f in failures.failures()}
    args = [(path, jobs, config, run, models_dir, w, progress, failed_before, backend_options)
            for w, jobs in enumerate(slices)]
    if n_workers <= 1:
        results = [_work(*a) for a in args]
    else:
        pool = mp.get_context("spawn").Pool(n_workers)
        try:
            results = pool.map(_work_star, args)
            pool.close()  # let workers exit on their own (terminate() leaks their semaphores)
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    summary.seconds = time.perf_counter() - start
    for r in results:
        summary.done += r["done"]
        summary.failed += r["failed"]
        summary.no_person += r["no_person"]
        summary.frames += r["frames"]
        summary.model_calls += r["backend"].get("landmark_calls", 0) + r["backend"].get("detector_calls", 0)

    info = CueStore.open(path).info()
    summary.bytes_per_clip = info.get("bytes_per_clip", 0.0)
    summary.bytes_per_300_frames = info.get("bytes_per_300_frames", 0.0)
    # Only this scan's clips: a failed file that was since deleted is no longer a failure.
    current = {spec.clip_id for spec in specs}
    summary.failures = [f for f in failures.failures() if f["clip_id"] in current]
    summary.failed = len(summary.failures)
    return summary
