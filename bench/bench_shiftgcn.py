"""Shift-GCN pretraining speed on CPU (a benchmark script, not a test): seconds per epoch of the
product's Shift-GCN (two-tap depthwise-conv shift while offsets are small) against the same network
forced onto its gather path (the first implementation, the baseline), in the same run on the same clips.

Clips: the synthetic skeletons of stages/extract/synthetic.py (NTU-25-sized, 3D) unless --pyskl gives a
real PYSKL file (e.g. outputs/bench-real/data/jhmdb.pkl after `make bench-real`). Run alone.

  .venv/bin/python bench/bench_shiftgcn.py [--pyskl FILE --layout FILE] [--width 16] [--frames 32]
"""
from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from posebridge.stages.train.encoders import shift_gcn
from posebridge.stages.train.encoders.frozen import ShiftGCNSettings, pretrain


def clips(args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if args.pyskl:
        from posebridge.cache.layouts import load_layout
        from posebridge.stages.train.data import load_pyskl

        layout = load_layout(args.layout, Path.cwd()) if args.layout else None
        ds = load_pyskl(args.pyskl, args.frames, layout)
        labels = np.asarray(ds.labels)
        keypoints, confidence = torch.as_tensor(ds.keypoints), torch.as_tensor(ds.confidence)
    else:  # synthetic: random walks of 25 joints, labels by drift direction (mechanics, not accuracy)
        g = torch.Generator().manual_seed(0)
        labels = np.arange(args.clips) % 10
        drift = torch.randn(10, 1, 25, 3, generator=g)[labels] * 0.05
        keypoints = (torch.randn(args.clips, args.frames, 25, 3, generator=g) * 0.02 + drift).cumsum(1)[:, None]
        confidence = torch.ones(keypoints.shape[:-1])
    n = min(args.clips, len(labels))
    _, targets = np.unique(labels[:n], return_inverse=True)
    return keypoints[:n], confidence[:n], torch.as_tensor(targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyskl", type=Path, default=None)
    parser.add_argument("--layout", default=None, help="Layout name or .json for --pyskl.")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="Alternating timings per variant (median kept).")
    args = parser.parse_args(argv)
    keypoints, confidence, targets = clips(args)
    settings = ShiftGCNSettings(width=args.width, epochs=args.epochs)
    product_pad = shift_gcn.MAX_CONV_PAD
    times: dict[str, list[float]] = {"gather (baseline)": [], "depthwise conv (product)": []}
    for _ in range(args.repeats):
        # the product's own two paths: MAX_CONV_PAD -1 sends every shift to the gather
        for name, pad in zip(times, (-1, product_pad)):
            shift_gcn.MAX_CONV_PAD = pad  # temporal_shift reads it at call time
            start = time.perf_counter()
            pretrain(keypoints, confidence, targets, int(targets.max()) + 1, settings, torch.device("cpu"))
            times[name].append((time.perf_counter() - start) / args.epochs)
    shift_gcn.MAX_CONV_PAD = product_pad
    base = float(np.median(times["gather (baseline)"]))
    print(f"Shift-GCN pretraining, {len(targets)} clips x {args.frames} frames x {keypoints.shape[-2]} joints, "
          f"width {args.width}, batch {settings.batch_size}; {platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print("| temporal shift | s / epoch | speed-up |\n|---|---|---|")
    for name, values in times.items():
        med = float(np.median(values))
        print(f"| {name} | {med:.2f} | {base / med:.2f}x |")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
