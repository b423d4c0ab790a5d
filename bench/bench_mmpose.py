"""Stage-1 benchmark of the mmpose backend (a script, not a test): per-frame loop vs batched pipeline.

Both run the same model on the same device over the same decoded demo frames, end to end from
the video files (decoding on its own thread in both):
  (a) per-frame loop: `backend.process(frame)` for each frame: detect, crop, one forward pass of
      batch 1, decode, sample cues
  (b) batched pipeline: `backend.process_stream(frames)`: crops of many frames per forward pass,
      detection and cropping on worker threads while the model runs, fp16 autocast on CUDA
  (c) model forward only, one batch of `--batch-size` crops (the ceiling of (b))

Without --mmpose-checkpoint the model gets RANDOM weights from its config (saved as a checkpoint
and loaded through the backend's own path): speed does not depend on the weights. Run it with
`make bench-extract BACKEND=mmpose` (builds .venv-mmpose); on a GPU machine it uses CUDA.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed_frames_per_second(run, videos: list[Path], max_frames: int | None) -> tuple[float, int]:
    from posebridge.stages.extract.video import iter_frames

    frames, start = 0, time.perf_counter()
    for video in videos:
        frames += run(iter_frames(video, max_frames=max_frames))
    _sync()
    return frames / (time.perf_counter() - start), frames


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_mmpose(videos: list[Path], models_dir: Path | None, args) -> None:
    import torch

    from posebridge.stages import paths
    from posebridge.stages.extract.config import CueConfig, ExtractConfig
    from posebridge.stages.extract.backends import make_backend
    from posebridge.stages.extract.backends import mmpose_model as mm

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads or (min(4, os.cpu_count() or 1) if device.startswith("cuda") else 2)
    config = ExtractConfig(backend="mmpose", cues=CueConfig(levels=tuple(args.levels.split(","))))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.mmpose_checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = Path(tmp) / "random.pth"
            torch.save(mm.build_architecture(mm.resolve_config(args.mmpose_config)).state_dict(), checkpoint)
        backend = make_backend("mmpose", config, models_dir=paths.models_root(models_dir), num_threads=threads,
                               checkpoint=checkpoint, model_config=args.mmpose_config, device=device,
                               batch_size=args.batch_size)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none"
    print(f"mmpose backend: {Path(args.mmpose_config).name}, {'given' if args.mmpose_checkpoint else 'random'} "
          f"weights, device {device} (GPU: {gpu}), precision {backend.settings()['precision']}, "
          f"batch {backend.batch_size} crops, {backend.prep_threads} detect/crop thread(s), "
          f"{threads} thread(s); torch {torch.__version__}; levels {args.levels}")

    def per_frame(frames) -> int:
        n = 0
        for frame in frames:
            backend.process(frame)
            n += 1
        return n

    def batched(frames) -> int:
        return sum(1 for _ in backend.process_stream(frames))

    warm = videos[:1]  # CUDA context, cuDNN algorithm choice, allocator: not part of either number
    _timed_frames_per_second(per_frame, warm, 8)
    _timed_frames_per_second(batched, warm, 2 * backend.batch_size)
    a, frames = _timed_frames_per_second(per_frame, videos, args.max_frames)
    b, _ = _timed_frames_per_second(batched, videos, args.max_frames)

    crops = [np.random.default_rng(0).integers(0, 255, (backend.input_h, backend.input_w, 3), np.uint8)] * \
        backend.batch_size
    backend._infer(crops)
    rounds, start = 5, time.perf_counter()
    for _ in range(rounds):
        backend._infer(crops)
    _sync()
    c = rounds * len(crops) / (time.perf_counter() - start)

    print(f"\n{frames} frames per method ({len(videos)} clips)\n")
    print("| method | frames/s |\n|---|---|")
    print(f"| (a) per-frame loop: process(frame), batch 1 | {a:.1f} |")
    print(f"| (b) batched pipeline: process_stream(frames) | {b:.1f} |")
    print(f"| (c) model forward only, batch {backend.batch_size} (crops/s) | {c:.1f} |")
    print(f"\n{b / a:6.2f}x batched pipeline (b) vs per-frame loop (a)   [target on a GPU: >= 5.00x]")
    print(f"{b / c:6.2f}x batched pipeline (b) vs model forward only (c)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
