"""Stage-1 benchmark (a script, not a test): frames/s on the same demo videos, four ways.

  (a) MediaPipe's own Python Pose solution (mediapipe 0.10.21, bundled full model), cv2 decode
  (b) a naive loop over our backend: cv2 decode + full-frame RGB, detector on every frame,
      append to a list, save an .npz at the end
  (c) our pipeline end to end: `posebridge extract` into a fresh zarr cache
  (d) model only: the landmark interpreter's invoke() on a fixed crop, with all tensors
      preserved (the debug way to read internals), with the cue tensors appended to the
      outputs, and pruned to what the pipeline reads (the model (c) runs)
  (e) people per frame: our backend with --max-persons 1 and 2 (decode included, one
      interpreter thread), on the demo clips (one person) and on a two-person clip made of
      two demo clips side by side (bench/two_person_clip.py): frames/s and persons/s

Every number is measured in this run on this machine; ratios are printed as `N.NNx`.
Run it with `make bench-extract` (which installs the bench extra into .venv-bench).
`make bench-extract BACKEND=mmpose` measures the mmpose backend instead (bench/bench_mmpose.py).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from posebridge.stages import paths
from posebridge.stages.extract.config import ExtractConfig, RunSettings
from posebridge.stages.extract.backends import make_backend
from posebridge.stages.extract.backends.blazepose_spec import (FEATURE_LEVELS, HEATMAP_TENSOR, LANDMARK_FILE,
                                                               LANDMARK_INPUT_SIZE, LANDMARKS_TENSOR, PRESENCE_TENSOR)
from posebridge.stages.extract.backends.tflite_outputs import load_interpreter
from posebridge.stages.extract.frames import RGBFrame
from posebridge.stages.extract.run import extract
from posebridge.stages.extract.video import iter_frames

THREADS = 2


def cv2_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def bench_mediapipe(videos: list[Path]) -> float | None:
    try:
        import mediapipe as mp
    except ImportError:
        print("(a) skipped: mediapipe is not installed (run `make bench-extract`)")
        return None
    frames, start = 0, time.perf_counter()
    for video in videos:
        with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
            for rgb in cv2_frames(video):
                pose.process(rgb)
                frames += 1
    return frames / (time.perf_counter() - start)


def bench_naive(videos: list[Path], models_dir: Path, out_dir: Path) -> float:
    backend = make_backend("embedded", ExtractConfig(), models_dir=models_dir, num_threads=THREADS)
    frames, start = 0, time.perf_counter()
    for i, video in enumerate(videos):
        results = []
        for rgb in cv2_frames(video):
            backend.reset()  # no tracking: detect on every frame
            results.append(backend.process(RGBFrame(rgb)))
            frames += 1
        np.savez(out_dir / f"naive_{i}.npz", keypoints=np.stack([r.keypoints for r in results]),
                 features=np.stack([r.features for r in results]), heatmaps=np.stack([r.heatmaps for r in results]))
    return frames / (time.perf_counter() - start)


def bench_pipeline(videos: list[Path], models_dir: Path, work: Path) -> tuple[float, float]:
    video_dir = work / "videos"
    video_dir.mkdir()
    for i, video in enumerate(videos):  # repeats get their own names: every one is a clip to extract
        os.symlink(video.resolve(), video_dir / f"{i:03d}_{video.name}")
    start = time.perf_counter()
    summary = extract(video_dir, "bench", cache_dir=work / "cache", models_dir=models_dir,
                      run=RunSettings(), progress=False)  # default settings: workers/threads auto
    wall = time.perf_counter() - start
    assert summary.failed == 0, summary.lines()
    return summary.frames / wall, summary.bytes_per_300_frames


def bench_model_only(models_dir: Path, rounds: int = 300) -> dict[str, float]:
    crop = np.random.default_rng(0).random((1, LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3), dtype=np.float32)
    levels = ExtractConfig().cues.levels
    cue_tensors = [FEATURE_LEVELS[n].tensor for n in levels]
    read = [LANDMARKS_TENSOR, PRESENCE_TENSOR, HEATMAP_TENSOR] + cue_tensors
    path = models_dir / LANDMARK_FILE
    modes = {
        "preserve_all": load_interpreter(path, preserve_all=True, num_threads=THREADS),
        "exposed_outputs": load_interpreter(path, cue_tensors, num_threads=THREADS),
        "pruned": load_interpreter(path, read, prune=True, num_threads=THREADS),
    }
    fps = {}
    for name, interpreter in modes.items():
        index = interpreter.get_input_details()[0]["index"]
        for _ in range(5):  # warm-up invokes are slow
            interpreter.set_tensor(index, crop)
            interpreter.invoke()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(rounds):
                interpreter.set_tensor(index, crop)
                interpreter.invoke()
            best = min(best, (time.perf_counter() - start) / rounds)
        fps[name] = 1.0 / best
    return fps


def bench_persons(footage: dict[str, list[Path]], models_dir: Path, passes: int = 3) -> dict:
    """{(footage, M): (frames/s, persons/s, CPU ms per frame, detector calls / frame, landmark calls / frame)}.

    The cost compared is CPU time per frame (all threads of this process, decoding included): the
    pipeline runs as many workers as cores, so CPU time is what a frame costs, and unlike wall time
    it does not depend on what else the machine runs. frames/s and persons/s are wall-clock."""
    out = {}
    for name, videos in footage.items():
        for m in (1, 2):
            backend = make_backend("embedded", ExtractConfig(max_persons=m), models_dir=models_dir, num_threads=1)
            best = None
            for _ in range(passes):  # best of the passes: the machine may be shared
                before = dict(backend.stats)
                wall, cpu = time.perf_counter(), time.process_time()
                for video in videos:
                    backend.reset()
                    for frame in iter_frames(video):
                        backend.process(frame)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                delta = {k: backend.stats[k] - before[k] for k in backend.stats}
                if best is None or cpu < best[1]:
                    best = (wall, cpu, delta)
            wall, cpu, delta = best
            frames = delta["frames"]
            out[name, m] = (frames / wall, delta["persons"] / wall, 1000 * cpu / frames,
                            delta["detector_calls"] / frames, delta["landmark_calls"] / frames)
    return out


def ratio(line: str, num: float | None, den: float | None, target: str = "") -> None:
    if num is None or den is None:
        print(f"  n/a   {line}")
        return
    print(f"{num / den:6.2f}x {line}" + (f"   [target {target}]" if target else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=Path("assets/videos/demo"))
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="pass over the demo clips this many times "
                        "(same frames for every method; past start-up costs)")
    parser.add_argument("--skip", default="", help="comma-separated of a,b,c,d,e to skip")
    mm = parser.add_argument_group("--backend mmpose: per-frame loop vs batched pipeline (bench/bench_mmpose.py)")
    mm.add_argument("--backend", default="embedded", choices=("embedded", "mmpose"))
    mm.add_argument("--mmpose-config", default="body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py")
    mm.add_argument("--mmpose-checkpoint", type=Path, default=None, help="default: random weights from the config")
    mm.add_argument("--levels", default="stage2,stage3,stage4")
    mm.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    mm.add_argument("--batch-size", type=int, default=None, help="crops per forward (default: 64 cuda, 8 cpu)")
    mm.add_argument("--threads", type=int, default=None, help="torch threads on CPU, detect/crop threads on CUDA "
                    f"(default: {THREADS} on CPU, min(4, cores) on CUDA)")
    mm.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    videos = sorted(args.videos.glob("*.mp4")) * args.repeat
    if args.backend == "mmpose":
        from bench_mmpose import bench_mmpose

        bench_mmpose(videos, args.models_dir, args)
        return
    models_dir = paths.models_root(args.models_dir)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"videos: {', '.join(sorted({v.name for v in videos}))} x {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a = None if "a" in skip else bench_mediapipe(videos)
        b = None if "b" in skip else bench_naive(videos, models_dir, work)
        c, mb = (None, None) if "c" in skip else bench_pipeline(videos, models_dir, work)
        d = None if "d" in skip else bench_model_only(models_dir)
        persons = None
        if "e" not in skip:
            from two_person_clip import write_side_by_side  # bench/, next to this script

            demo = sorted(args.videos.glob("*.mp4"))
            two = write_side_by_side(demo[0], demo[2], work / "two_people.mp4", frames=100, height=1080)
            persons = bench_persons({"demo clips (1 person)": demo, "two-person clip": [two]}, models_dir)
    d = d or {"preserve_all": None, "exposed_outputs": None, "pruned": None}
    rows = [("(a) MediaPipe Pose solution, end to end", a), ("(b) naive loop over our backend", b),
            ("(c) our pipeline, end to end into zarr", c),
            ("(d) model only, all tensors preserved", d["preserve_all"]),
            ("(d') model only, cue tensors appended to the model's outputs", d["exposed_outputs"]),
            ("(d'') model only, outputs = what is read, unread branches pruned (what (c) runs)", d["pruned"])]
    print("\n| method | frames/s |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {'n/a' if value is None else f'{value:.1f}'} |")
    if mb is not None:
        print(f"\ncache: {mb / 1e6:.3f} MB per 300 frames")
    print()
    ratio("pipeline (c) vs MediaPipe Pose solution (a)", c, a, ">= 2.00x")
    ratio("pipeline (c) vs naive loop (b)", c, b)
    ratio("pipeline (c) vs model only with all tensors preserved (d)", c, d["preserve_all"], ">= 0.85x")
    ratio("pipeline (c) vs model only with cue tensors appended (d')", c, d["exposed_outputs"])
    ratio("pipeline (c) vs the pruned model it runs, model only (d'')", c, d["pruned"])
    if persons:
        print("\n| (e) footage | max persons | frames/s | persons/s | CPU ms / frame | detector calls / frame "
              "| landmark calls / frame |\n|---|---|---|---|---|---|---|")
        for (name, m), (fps, pps, cpu_ms, det, lm) in persons.items():
            print(f"| {name} | {m} | {fps:.1f} | {pps:.1f} | {cpu_ms:.1f} | {det:.3f} | {lm:.3f} |")
        print()
        for name in dict.fromkeys(name for name, _ in persons):
            target = "<= 1.80x" if "two" in name else "~1.00x"
            ratio(f"CPU time per frame, M=2 vs M=1, {name}", persons[name, 2][2], persons[name, 1][2], target)


if __name__ == "__main__":
    main()
