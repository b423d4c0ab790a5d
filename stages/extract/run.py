"""Stage 1 end to end: videos -> HPE -> pose-anchored cues -> zarr cache.

Resumable by construction: clips are written in whole parts that appear atomically, a clip
counts as done when its content id is in a complete part, and a re-run skips done clips. A
kill -9 loses at most the part being buffered, which the next run recomputes.

Exactly once across processes and hosts: a worker claims a clip (cache/claims.py) before it
extracts it, checks the store once more, and releases the claim only after the part holding
the clip is in place. Concurrent runs, torchrun ranks and SLURM array tasks (shard.py) thereby
split the work; the workers stop with their command (workers.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from importlib import metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from posebridge.cache.claims import DEFAULT_LEASE_S, ClaimBook
from posebridge.cache.manifest import FailureLog
from posebridge.cache.relabel import relabel
from posebridge.cache.schema import BLAZEPOSE33, CacheLayout, skeleton_named_by
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, store_dir
from posebridge.cache.writer import ShardWriter
from posebridge.stages import paths
from posebridge.stages.extract.config import ExtractConfig, RunSettings, available_cores
from posebridge.stages.datasets import ClipSpec, scan
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import canonical_json, file_sha256, fingerprint
from posebridge.stages.extract.backends import make_backend
from posebridge.stages.extract.backends.base import PoseBackend
from posebridge.stages.extract.coverage import Coverage, content_ids, coverage, is_held
from posebridge.stages.extract.shard import Shard, backend_device, detect_shard
from posebridge.stages.extract.tracking import main_actor_order
from posebridge.stages.extract.video import VideoError, iter_frames, probe
from posebridge.stages.extract.workers import Interrupted, check_stop, run_workers


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
    elsewhere: int = 0  # clips of this shard another live process holds a claim on
    relabelled: int = 0  # cached clips whose labels changed: copied under the new labels, not re-extracted
    shard: Shard | None = None
    coverage: Coverage | None = None  # the whole videos folder, every shard
    interrupted: bool = False

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [
            f"store: {self.store}",
            f"clips: {self.done} extracted, {self.skipped} already cached, {self.failed} failed"
            + (f", {self.relabelled} relabelled (same bytes, new labels: no pose model run)" if self.relabelled else "")
            + (f", {self.no_person} with no person found" if self.no_person else "")
            + (f", {self.elsewhere} being extracted by other processes" if self.elsewhere else "")
            + (f" ({self.shard.describe()})" if self.shard and self.shard.count > 1 else ""),
            (f"speed: {self.frames} frames in {self.seconds:.1f} s = {self.frames_per_second:.1f} frames/s"
             if self.frames else "speed: nothing new to extract"),
            f"cache: {self.bytes_per_clip / 1e6:.3f} MB per clip, "
            f"{self.bytes_per_300_frames / 1e6:.3f} MB per 300 frames",
        ]
        if self.coverage is not None:
            out.append(self.coverage.line())
        for f in self.failures[:10]:
            out.append(f"failed: {f['clip_id']}: {f['reason']}")
        if self.failed > 10:
            out.append(f"... {self.failed - 10} more in {self.store / 'failures.jsonl'}")
        if self.failed:
            out.append(f"failed clips are logged in {self.store / 'failures.jsonl'} and tried again by the next run "
                       f"(fix or remove the files; the clips already cached are kept)")
        return out

    def interrupted_line(self) -> str:
        held = f"; the store holds {self.coverage.held} of {self.coverage.total} clips" if self.coverage else ""
        return (f"interrupted: kept the {self.done} clip(s) this run finished{held} ({self.store}); "
                f"run the same command again to resume")


# Libraries whose version can change the numbers any clip gets (decoder, colour conversion);
# each backend adds its own (PoseBackend.runtime_packages).
RUNTIME_PACKAGES = ("av", "opencv-python-headless", "numpy")


def extractor_identity(config: ExtractConfig, backend: PoseBackend) -> dict:
    """What the cache fingerprint covers: output settings, model file hashes, the backend's own
    output-shaping constants and the versions of the libraries that compute the numbers."""
    models = {name: file_sha256(path) for name, path in sorted(backend.model_files().items())}
    packages = sorted({*RUNTIME_PACKAGES, *backend.runtime_packages()})
    runtime = {pkg: metadata.version(pkg) for pkg in packages}
    return {**config.output_settings(), "models": models, "backend_settings": backend.settings(),
            "runtime": runtime}


def cache_layout(config: ExtractConfig, backend: PoseBackend) -> CacheLayout:
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
        heatmap_kind=backend.heatmap_kind,
        max_persons=config.max_persons,
    )




def extract_clip(backend, spec: ClipSpec, cid: str, config: ExtractConfig,
                 frame_bar: tqdm | None = None,
                 stop_check: Callable[[], None] | None = None) -> tuple[ClipRecord, ClipArrays]:
    """Run the backend over one clip's frames; raises VideoError for unreadable input.

    stop_check runs after every frame (it raises to stop, or ends an orphaned worker)."""
    info = probe(spec.path)
    backend.reset()
    kps, scores, feats, heats = [], [], [], []
    frames = iter_frames(spec.path, stride=config.stride, max_frames=config.max_frames)
    # closing: on any exit the stream's threads (a batching backend's, the decoder's) end here.
    with contextlib.closing(backend.process_stream(frames)) as stream:
        for cues in stream:
            if stop_check is not None:
                stop_check()
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


def _relabel(store: CueStore, records: list[ClipRecord], shard_clips: int, lease_s: float) -> int:
    """Relabel the clips this process can claim (another process relabels or extracts the rest)."""
    claims = ClaimBook(store.path, lease_s=lease_s)
    mine = [r for r in records if claims.try_acquire(r.clip_id)]
    try:
        with claims.heartbeats():
            return relabel(store, mine, shard_clips=shard_clips,
                           on_written=lambda done: [claims.release(r.clip_id) for r in done])
    finally:
        claims.release_all()


def _work(store_path: Path, jobs: list[tuple[ClipSpec, str]], config: ExtractConfig, run: RunSettings,
          models_dir: Path | None, worker: int, progress: bool, failed_before: set[str],
          backend_options: dict, lease_s: float) -> dict:
    """One worker: its own backend and its own parts (one writer per part, no locks); a clip is
    claimed before it is extracted, and its claim released once its part is in place."""
    if run.workers > 1:
        import cv2

        cv2.setNumThreads(1)  # the cores are already shared out between workers
    store = CueStore.open(store_path)
    failures = FailureLog(store_path)
    claims = ClaimBook(store_path, lease_s=lease_s)
    backend = make_backend(config.backend, config, models_dir=models_dir, num_threads=run.num_threads,
                           **backend_options)
    stats = {"done": 0, "failed": 0, "no_person": 0, "frames": 0, "skipped": 0, "elsewhere": 0,
             "interrupted": False}
    clip_bar = tqdm(total=len(jobs), desc=f"clips[{worker}]" if run.workers > 1 else "clips",
                    unit="clip", disable=_bar_off(progress), position=2 * worker, leave=True)
    frame_bar = tqdm(desc="frames", unit="frame", disable=_bar_off(progress), position=2 * worker + 1, leave=False)

    def release(records: list[ClipRecord]) -> None:  # a part is on disk: its clips are done
        for record in records:
            if record.clip_id in failed_before:  # only now: a kill before this leaves the failure logged
                failures.resolve(record.clip_id, record.content_id)
            claims.release(record.clip_id)

    try:
        with claims.heartbeats(), ShardWriter(store, shard_clips=run.shard_clips, worker=worker,
                                              on_written=release) as writer:
            queue = list(jobs)
            for _ in range(2):  # a second look at clips another process held the first time
                held_elsewhere = []
                for spec, cid in queue:
                    if not claims.try_acquire(spec.clip_id):
                        held_elsewhere.append((spec, cid))
                        continue
                    if is_held(store, spec, cid):  # another process finished it since we scanned
                        claims.release(spec.clip_id)
                        stats["skipped"] += 1
                        clip_bar.update(1)
                        continue
                    clip_bar.set_postfix_str(spec.clip_id[-40:])
                    try:
                        record, arrays = extract_clip(backend, spec, cid, config, frame_bar, stop_check=check_stop)
                    except (Interrupted, KeyboardInterrupt):
                        claims.release(spec.clip_id)  # unfinished: free for the next run at once
                        raise
                    except Exception as err:  # one bad file must not end the run; the log keeps the reason
                        reason = str(err) if isinstance(err, (VideoError, OSError)) else f"{type(err).__name__}: {err}"
                        failures.record(spec.clip_id, str(spec.path), cid, reason)
                        claims.release(spec.clip_id)
                        stats["failed"] += 1
                    else:
                        writer.add(record, arrays)  # its claim (and any old failure) goes when its part is written
                        stats["done"] += 1
                        stats["frames"] += record.num_frames
                        stats["no_person"] += int(float(np.max(arrays.score)) <= 0.0)
                    clip_bar.update(1)
                queue = held_elsewhere
            stats["elsewhere"] = len(queue)
    except (Interrupted, KeyboardInterrupt):
        stats["interrupted"] = True  # the writer has flushed the finished clips on the way out
    finally:
        claims.release_all()  # clips whose part could not be written
        frame_bar.close()
        clip_bar.close()
    stats["backend"] = dict(backend.stats)
    return stats


def default_dataset(videos: Path) -> str:
    """The videos folder's name: two folders never share a store by accident."""
    name = Path(videos).resolve().name
    if not name:
        raise UserError(f"cannot name a dataset after {videos}: pass --dataset NAME")
    return name


def extract(videos: Path, dataset: str | None = None, *, cache_dir: Path | None = None,
            config: ExtractConfig = ExtractConfig(), run: RunSettings = RunSettings(),
            annotations: Path | None = None, models_dir: Path | None = None,
            progress: bool = True, backend_options: dict | None = None, shard: Shard | None = None,
            echo: Callable[[str], None] | None = None, lease_s: float = DEFAULT_LEASE_S) -> ExtractSummary:
    """Extract this shard's clips under `videos` into the store of (dataset, extractor fingerprint).

    dataset defaults to the videos folder's name. shard defaults to what the environment says
    (torchrun, SLURM array; see shard.py). echo gets the run's first lines (shard, settings;
    default: printed when progress is on).
    backend_options go to the backend (mmpose: checkpoint=, model_config=, device=)."""
    dataset = dataset or default_dataset(videos)
    shard = shard or detect_shard()
    echo = echo or ((lambda line: print(line, flush=True)) if progress else (lambda line: None))
    backend_options = dict(backend_options or {})
    if "device" in backend_options or shard.local_rank is not None:
        device = backend_device(config.backend, backend_options.get("device"), shard)
        if device is not None:
            backend_options["device"] = device
    specs = scan(Path(videos), dataset, annotations)  # the videos first: the cheapest mistake to report
    models_dir = paths.models_root(models_dir)
    backend = make_backend(config.backend, config, models_dir=models_dir, num_threads=1,  # checks the config
                           **backend_options)
    mine = [spec for spec in specs if shard.holds(spec.clip_id)]
    echo(f"{shard.describe()}: {len(mine)} of {len(specs)} clips of {videos}, dataset {dataset}")
    identity = extractor_identity(config, backend)
    fp = fingerprint(identity)
    path = store_dir(paths.cache_root(cache_dir), dataset, fp)
    store = CueStore.create(path, dataset=dataset, fingerprint=fp, extractor=identity,
                            layout=cache_layout(config, backend))
    del backend  # workers build their own

    ids = content_ids(specs, path / "content_ids.json")
    # Done = this clip's current bytes are cached with its current labels. Keyed on the id and the
    # bytes, so a re-encoded file is redone and the same bytes under two names stay two clips. A
    # changed label alone (a class folder added, an annotation file given) needs no pose model: the
    # stored bytes are copied under the new labels, and the newer part wins, so old and new label
    # numbering never mix in one store.
    summary = ExtractSummary(store=path, shard=shard)
    failures = FailureLog(path)
    todo, relabel_records = [], []
    for spec in mine:
        cid = ids.get(spec.clip_id)
        if cid is None:
            failures.record(spec.clip_id, str(spec.path), None, "file vanished before extraction")
            summary.failed += 1
        elif is_held(store, spec, cid):
            summary.skipped += 1
        elif (cached := store.lookup(spec.clip_id)) is not None and cached.content_id == cid:
            relabel_records.append(dataclasses.replace(cached, label=spec.label, label_name=spec.label_name,
                                                       meta=spec.meta))
        else:
            todo.append((spec, cid))
    if relabel_records:
        summary.relabelled = _relabel(store, relabel_records, run.shard_clips, lease_s)

    run = run.resolved(len(todo), cores=max(1, available_cores() // shard.local_world_size))
    echo(f"extract {dataset}: {len(mine)} clips ({summary.skipped} cached), {run.workers} worker(s) x "
         f"{run.num_threads} thread(s); store {path}; settings {canonical_json(config.output_settings())}")
    start = time.perf_counter()
    n_workers = max(1, min(run.workers, len(todo)))
    # Contiguous slices keep each worker's parts holding neighbouring clips.
    bounds = np.linspace(0, len(todo), n_workers + 1).astype(int)
    slices = [todo[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    failed_before = {f["clip_id"] for f in failures.failures()}
    args = [(path, jobs, config, run, models_dir, w, progress, failed_before, backend_options, lease_s)
            for w, jobs in enumerate(slices)]
    with _sigterm_as_interrupt():
        if n_workers <= 1:
            results, interrupted = [_work(*a) for a in args], False
        else:
            results, interrupted = run_workers(_work, args)
    summary.seconds = time.perf_counter() - start
    summary.interrupted = interrupted or any(r["interrupted"] for r in results)
    for r in results:
        summary.done += r["done"]
        summary.skipped += r["skipped"]
        summary.elsewhere += r["elsewhere"]
        summary.no_person += r["no_person"]
        summary.frames += r["frames"]
        summary.model_calls += r["backend"].get("landmark_calls", 0) + r["backend"].get("detector_calls", 0)

    store = CueStore.open(path)
    info = store.info()
    summary.bytes_per_clip = info.get("bytes_per_clip", 0.0)
    summary.bytes_per_300_frames = info.get("bytes_per_300_frames", 0.0)
    summary.coverage = coverage(store, Path(videos), specs, ids)
    # Only this shard's current clips: a failed file that was since deleted is no longer a failure.
    current = {spec.clip_id for spec in mine}
    summary.failures = [f for f in failures.failures() if f["clip_id"] in current]
    summary.failed = len(summary.failures)
    return summary


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (scancel, a scheduler's time limit, `kill`) stops a run like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
