"""Decode-path benchmark for stage 1: which way of turning a video into frames is fastest here.

Compares, per clip, PyAV yuv420p planes (no RGB), PyAV rgb24 via to_ndarray, PyAV yuv420p + cv2
I420->RGB, and cv2.VideoCapture.read + BGR2RGB (the baseline, measured in the same run,
interleaved with the others), each PyAV path with the stream's default threading and with
thread_type AUTO; plus `iter_frames` itself (the path the extractor uses: background decode
thread + bounded queue, YUV frames).

    .venv/bin/python bench/bench_decode.py [--repeats 5] [CLIP ...]
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2

from posebridge.stages.extract.video import iter_frames

DEMO = Path(__file__).resolve().parents[1] / "assets" / "videos" / "demo"
DEFAULT_CLIPS = [DEMO / "cam01.mp4", DEMO / "cam03.mp4", DEMO / "cam04.mp4"]


def _pyav(fmt: str, to_rgb_with_cv2: bool, threading: str | None) -> Callable[[Path], int]:
    def run(path: Path) -> int:
        n = 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if threading:
                stream.thread_type = threading
            for frame in container.decode(stream):
                array = frame.to_ndarray(format=fmt)
                if to_rgb_with_cv2:
                    cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)
                n += 1
        return n
    return run


def _cv2_read(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return n
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            n += 1
    finally:
        capture.release()


def _iter_frames(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


METHODS: dict[str, Callable[[Path], int]] = {
    "cv2 VideoCapture.read + BGR2RGB": _cv2_read,
    "PyAV yuv420p planes (no RGB), default threads": _pyav("yuv420p", False, None),
    "PyAV yuv420p planes (no RGB), AUTO threads": _pyav("yuv420p", False, "AUTO"),
    "PyAV rgb24 to_ndarray, default threads": _pyav("rgb24", False, None),
    "PyAV rgb24 to_ndarray, AUTO threads": _pyav("rgb24", False, "AUTO"),
    "PyAV yuv420p + cv2 I420->RGB, default threads": _pyav("yuv420p", True, None),
    "PyAV yuv420p + cv2 I420->RGB, AUTO threads": _pyav("yuv420p", True, "AUTO"),
    "posebridge iter_frames (YUV frames, prefetch thread)": _iter_frames,
}
BASELINE = "cv2 VideoCapture.read + BGR2RGB"


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Best frames/s of `repeats` full decodes per method, after one warm-up decode each.

    Methods take turns within every repeat, and the best run counts: on a shared machine other
    processes only ever slow a run down, so the fastest one is the least disturbed.
    """
    best = dict.fromkeys(METHODS, 0.0)
    for method in METHODS.values():
        method(path)
    for _ in range(repeats):
        for name, method in METHODS.items():
            start = time.perf_counter()
            frames = method(path)
            best[name] = max(best[name], frames / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"cv2 {cv2.__version__}, PyAV {av.__version__}, cv2 threads {cv2.getNumThreads()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for path in args.clips:
        with av.open(str(path)) as container:
            s = container.streams.video[0]
            print(f"\n{path.name}: {s.codec_context.name} {s.format.name} {s.width}x{s.height} "
                  f"{float(s.average_rate):.0f} fps, {s.frames} frames")
        rates = measure(path, args.repeats)
        base = rates[BASELINE]
        for name, rate in rates.items():
            print(f"  {rate:8.1f} frames/s  {rate / base:5.2f}x {name}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (numbers from a busy machine are noisy)")


if __name__ == "__main__":
    main()
