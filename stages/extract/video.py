"""Streaming video input for stage 1: probe a file, then iterate its frames one at a time.

A whole video is never held in memory: a background thread decodes into a bounded queue
(`prefetch` frames), so decoding overlaps pose inference and memory stays at a few frames.
Frames come out as `YUV420Frame` when the stream is 8-bit limited-range 4:2:0 with even sides
(the common case: the planes are copied as decoded and only the small model crops are ever
converted to RGB), otherwise as `RGBFrame`. Still images (jpg/png) are one-frame videos.

End of video vs. corruption (the rule every caller can rely on):
- FFmpeg raising during demux or decode (invalid data, I/O error) is corruption:
  VideoError("corrupt after N frames: ..."), never a silently shorter clip.
- A clean end of file can still be a truncated file: a copy cut short with its index intact
  (moov atom in front) demuxes without any error and just stops. So for containers whose header
  declares the stream duration from an index (mp4/mov, avi, mkv), the timestamps the demuxer
  actually delivered must reach that duration, within two frame durations plus 1%; otherwise
  VideoError("truncated: decoded N of M frames ..."). The container's frame count alone is only
  a hint (edit lists and broken headers make it wrong), so it is reported, not compared.
  Formats without such an index (mpeg-ps/ts, raw streams) only get the error rule.
- A video that ends cleanly without a single decodable frame is an error too.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from posebridge.stages.extract.frames import RGBFrame, YUV420Frame
from posebridge.stages.datasets.base import IMAGE_SUFFIXES

# Container formats whose declared stream duration comes from an index, not a bitrate guess.
_INDEXED_FORMATS = frozenset({"mov", "mp4", "avi", "matroska"})
_END = object()  # sentinel the decode thread puts after the last frame
_PUT_POLL_S = 0.05  # how often a producer blocked on a full queue checks for a stop request


class VideoError(Exception):
    """A file that cannot be decoded completely; str(err) is the reason."""

    def __init__(self, reason: str, frames_decoded: int = 0):
        super().__init__(reason)
        self.frames_decoded = frames_decoded


@dataclass
class VideoInfo:
    path: Path
    width: int  # as displayed, i.e. after the container's rotation is applied
    height: int
    fps: float  # 0.0 for a still image or an unknown rate
    frame_count_hint: int | None  # the container's claim; may be wrong


Frame = YUV420Frame | RGBFrame


def probe(path: str | Path) -> VideoInfo:
    """Open the file and decode its first frame (which also proves it decodes at all)."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        rgb = _read_image(path)
        return VideoInfo(path, rgb.shape[1], rgb.shape[0], 0.0, 1)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            raise VideoError(f"corrupt after 0 frames: {_ffmpeg_message(err)}") from err
        if first is None:
            raise VideoError("no decodable frames")
        quarter_turns = _quarter_turns(first.rotation)
        width, height = (first.height, first.width) if quarter_turns % 2 else (first.width, first.height)
        return VideoInfo(path, width, height, _fps(stream), _frame_count_hint(stream))


def iter_frames(path: str | Path, stride: int = 1, max_frames: int | None = None,
                prefetch: int = 8) -> Iterator[Frame]:
    """Every `stride`-th frame, at most `max_frames` of them; raises VideoError on a bad file.

    Closing the generator early (break, exception, garbage collection) stops the decode thread.
    """
    if stride < 1 or prefetch < 1 or (max_frames is not None and max_frames < 0):
        raise ValueError(f"need stride >= 1, prefetch >= 1, max_frames >= 0 or None; got "
                         f"{stride}, {prefetch}, {max_frames}")
    path = Path(path)
    if max_frames == 0:
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield RGBFrame(_read_image(path))
        return
    yield from _iter_video(path, stride, max_frames, prefetch)


def _iter_video(path: Path, stride: int, max_frames: int | None, prefetch: int) -> Iterator[Frame]:
    channel: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    worker = threading.Thread(target=_decode_into, args=(path, stride, max_frames, channel, stop),
                              name=f"decode {path.name}", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = channel.get(timeout=1.0)
            except queue.Empty:
                if worker.is_alive() or not channel.empty():
                    continue
                raise RuntimeError(f"decode thread for {path} ended without a result") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # The worker may be blocked on a full queue or inside one decode call; emptying the
        # queue frees it at once, the join makes sure no thread outlives the generator.
        while worker.is_alive():
            _drain(channel)
            worker.join(timeout=_PUT_POLL_S)


def _decode_into(path: Path, stride: int, max_frames: int | None, channel: queue.Queue,
                 stop: threading.Event) -> None:
    """Decode thread body: frames, then _END or the exception, into `channel`."""
    decoded = 0
    try:
        with _open_video(path) as container:
            # Decoder threading stays at PyAV's default: AUTO (frame threads) measured slower for
            # the planes path on 2 cores, and stage 1 already runs inference beside this thread.
            stream = container.streams.video[0]
            kept = 0
            delivered_end = None  # latest pts + duration the demuxer handed out
            for packet in container.demux(stream):
                if stop.is_set():
                    return
                if packet.pts is not None:
                    packet_end = packet.pts + (packet.duration or 0)
                    delivered_end = packet_end if delivered_end is None else max(delivered_end, packet_end)
                for frame in packet.decode():
                    if decoded % stride == 0:
                        if not _put(channel, _to_frame(frame), stop):
                            return
                        kept += 1
                    decoded += 1
                    if max_frames is not None and kept >= max_frames:
                        _put(channel, _END, stop)
                        return
            if decoded == 0:
                raise VideoError("no decodable frames")
            _check_not_truncated(container, stream, delivered_end, decoded)
        _put(channel, _END, stop)
    except av.FFmpegError as err:
        _put(channel, VideoError(f"corrupt after {decoded} frames: {_ffmpeg_message(err)}", decoded), stop)
    except VideoError as err:
        err.frames_decoded = decoded
        _put(channel, err, stop)
    except Exception as err:  # a bug or MemoryError: hand it to the consumer unchanged
        _put(channel, err, stop)


def _check_not_truncated(container, stream, delivered_end: int | None, decoded: int) -> None:
    if not _INDEXED_FORMATS & set(container.format.name.split(",")):
        return
    if not stream.duration or stream.time_base is None or delivered_end is None:
        return
    base = Fraction(stream.time_base)
    declared = float((stream.duration + (stream.start_time or 0)) * base)
    delivered = float(delivered_end * base)
    fps = _fps(stream)
    tolerance = (2 / fps if fps > 0 else 0.0) + 0.01 * float(stream.duration * base)
    if delivered < declared - tolerance:
        claimed = _frame_count_hint(stream)
        of = f" of {claimed}" if claimed else ""
        raise VideoError(f"truncated: decoded {decoded}{of} frames; stream data ends at "
                         f"{delivered:.2f}s of the {declared:.2f}s its header declares")


def _put(channel: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Blocking put that gives up when the consumer has gone; False if it gave up."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=_PUT_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _drain(channel: queue.Queue) -> None:
    try:
        while True:
            channel.get_nowait()
    except queue.Empty:
        pass


def _to_frame(frame: av.VideoFrame) -> Frame:
    # Only yuv420p is handed out as planes: YUV420Frame converts with BT.601 limited range, so
    # full-range (yuvj420p), 10-bit and 4:2:2/4:4:4 streams take swscale's exact RGB path.
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        out: Frame = YUV420Frame.from_av(frame)
    else:
        out = RGBFrame(frame.to_ndarray(format="rgb24"))
    return rotate(out, _quarter_turns(frame.rotation))


def _quarter_turns(rotation_ccw_degrees: float) -> int:
    """Counter-clockwise quarter turns that show the frame upright (phone videos store it sideways)."""
    return round(rotation_ccw_degrees / 90) % 4


def rotate(frame: Frame, quarter_turns: int) -> Frame:
    """The frame turned counter-clockwise; YUV planes are turned as planes, never via RGB."""
    if quarter_turns == 0:
        return frame
    if isinstance(frame, RGBFrame):
        return RGBFrame(np.ascontiguousarray(np.rot90(frame.rgb, quarter_turns)))
    return YUV420Frame(*(np.ascontiguousarray(np.rot90(plane, quarter_turns)) for plane in (frame.y, frame.u, frame.v)))


def _open_video(path: Path):
    if not path.is_file():
        raise VideoError("no such file")
    if path.stat().st_size == 0:
        raise VideoError("empty file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as err:
        raise VideoError(f"cannot open: {_ffmpeg_message(err)}") from err
    if not container.streams.video:
        container.close()
        raise VideoError("not a video (no video stream)")
    return container


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise VideoError("no such file")
    if path.stat().st_size == 0:
        raise VideoError("empty file")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies the EXIF orientation
    if bgr is None:
        raise VideoError("cannot open: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _ffmpeg_message(err: av.FFmpegError) -> str:
    return err.strerror or str(err)


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _frame_count_hint(stream) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and _fps(stream):
        return round(float(stream.duration * stream.time_base) * _fps(stream))
    return None
