"""Two-person test footage from real single-person clips: two demo clips side by side in one frame.

No two-person clip ships with the project (the demo clips show one person each), so tests and
`make bench-extract` build one: the first `frames` frames of two clips, each scaled to `height`,
placed left | right and encoded as H.264 with PyAV. Both halves are real footage; the person on
the left stays on the left, which is what identity tests check.

    .venv/bin/python bench/two_person_clip.py OUT.mp4 [--frames 60] [--height 960]
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def _frames(path: Path, count: int, height: int):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == count:
                return
            rgb = frame.to_ndarray(format="rgb24")
            width = round(rgb.shape[1] * height / rgb.shape[0] / 2) * 2  # even, for yuv420p
            yield cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def write_side_by_side(left: Path, right: Path, out: Path, frames: int = 60, height: int = 960,
                       hide_right: range = range(0)) -> Path:
    """Write `out` (H.264, yuv420p) holding `left` | `right`; returns out. In the frames of
    `hide_right` the right half is plain grey: that person leaves and comes back."""
    with av.open(str(left)) as probe:
        fps = probe.streams.video[0].average_rate or Fraction(30)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = None
        for i, (a, b) in enumerate(zip(_frames(left, frames, height), _frames(right, frames, height))):
            both = np.ascontiguousarray(np.hstack([a, np.full_like(b, 128) if i in hide_right else b]))
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = both.shape[1], both.shape[0], "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(both, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames decoded from {left} or {right}")
        for packet in stream.encode():
            container.mux(packet)
    return out


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    demo = root / "assets" / "videos" / "demo"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--left", type=Path, default=demo / "cam01.mp4")
    parser.add_argument("--right", type=Path, default=demo / "cam03.mp4")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args()
    print(write_side_by_side(args.left, args.right, args.out, args.frames, args.height))


if __name__ == "__main__":
    main()
