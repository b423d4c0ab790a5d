"""Streaming decode on the real demo clips, and every way a file can be broken (made on the fly)."""
from __future__ import annotations

import hashlib
import threading
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from posebridge.stages.extract.frames import RGBFrame, YUV420Frame
from posebridge.stages.extract.video import VideoError, iter_frames, probe, rotate

ROOT = Path(__file__).resolve().parents[3]
CAM01 = ROOT / "assets/videos/demo/cam01.mp4"  # H.264, moov atom at the end
CAM02 = ROOT / "assets/videos/demo/cam02.mp4"  # VP9, moov atom in front (so a cut copy still opens)
MESSI = ROOT / "assets/images/messi5.jpg"


def _digest(frame) -> str:
    return hashlib.sha1(frame.i420.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def cam01_digests() -> list[str]:
    return [_digest(f) for f in iter_frames(CAM01)]


def test_probe_reports_the_demo_clip():
    info = probe(CAM01)
    assert (info.width, info.height, info.fps, info.frame_count_hint) == (1080, 1920, 60.0, 100)


def test_every_frame_is_decoded_as_yuv_planes(cam01_digests):
    assert len(cam01_digests) == 100
    frame = next(iter_frames(CAM01, max_frames=1))
    assert isinstance(frame, YUV420Frame)
    assert (frame.width, frame.height) == (1080, 1920)
    assert len(set(cam01_digests)) > 90  # real motion, not one frame repeated


def test_stride_and_max_frames_pick_the_right_frames(cam01_digests):
    assert [_digest(f) for f in iter_frames(CAM01, stride=25)] == cam01_digests[::25]
    assert [_digest(f) for f in iter_frames(CAM01, stride=3, max_frames=5)] == cam01_digests[:15:3]
    assert list(iter_frames(CAM01, max_frames=0)) == []


def test_decode_thread_stops_when_the_consumer_breaks_early():
    baseline = threading.active_count()
    frames = iter_frames(CAM01, prefetch=2)
    next(frames)
    assert threading.active_count() == baseline + 1  # the decoder, blocked on the full queue
    frames.close()
    assert threading.active_count() == baseline


def test_decode_thread_ends_after_an_error_and_after_the_last_frame(tmp_path):
    baseline = threading.active_count()
    assert sum(1 for _ in iter_frames(CAM01, max_frames=3)) == 3
    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError):
        list(iter_frames(bad))
    assert threading.active_count() == baseline


def test_yuv_warp_matches_the_rgb_path():
    with av.open(str(CAM01)) as container:
        decoded = next(container.decode(video=0))
        yuv = YUV420Frame.from_i420(decoded.to_ndarray(format="yuv420p"))
        rgb = RGBFrame(decoded.to_ndarray(format="rgb24"))
    crop = np.array([[0.3, 0.02, -100.0], [-0.02, 0.3, -150.0]])
    diff = np.abs(yuv.warp(crop, 256).astype(int) - rgb.warp(crop, 256).astype(int))
    assert diff.mean() < 3.0  # measured 1.5; chroma upsampling differs at edges only
    shifted = crop + [[0, 0, 4.0], [0, 0, 0]]
    assert np.abs(yuv.warp(shifted, 256).astype(int) - rgb.warp(crop, 256).astype(int)).mean() > diff.mean()


def test_rotation_of_yuv_planes_matches_rotating_rgb():
    # Synthetic planes (mechanics only): any [H*3/2, W] buffer is a valid I420 picture.
    planes = np.random.default_rng(3).integers(0, 256, (240 * 3 // 2, 136), dtype=np.uint8)
    frame = YUV420Frame.from_i420(planes)
    for turns in (1, 2, 3):
        turned = rotate(frame, turns)
        assert np.array_equal(turned.to_rgb(), np.rot90(frame.to_rgb(), turns))
    assert rotate(frame, 0) is frame


def test_still_image_is_a_one_frame_video():
    frames = list(iter_frames(MESSI))
    assert len(frames) == 1 and isinstance(frames[0], RGBFrame)
    assert (frames[0].width, frames[0].height) == (548, 342)
    assert probe(MESSI).frame_count_hint == 1


def _reason(path: Path) -> VideoError:
    with pytest.raises(VideoError) as caught:
        for _ in iter_frames(path):
            pass
    return caught.value


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert str(_reason(tmp_path / "empty.mp4")) == "empty file"
    with pytest.raises(VideoError, match="empty file"):
        probe(tmp_path / "empty.mp4")


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n")
    assert str(_reason(tmp_path / "notes.mp4")).startswith("cannot open: ")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mkv"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    assert str(_reason(path)).startswith("cannot open: ")


def test_audio_only_file_is_not_a_video(tmp_path):
    path = tmp_path / "tone.avi"
    with wave.open(str(tmp_path / "tone.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(np.zeros(8000, dtype=np.int16).tobytes())
    (tmp_path / "tone.wav").rename(path)
    assert str(_reason(path)) == "not a video (no video stream)"


def test_truncated_copy_without_its_index_cannot_open(tmp_path):
    data = CAM01.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.4)])  # cam01 keeps its moov atom at the end
    err = _reason(path)
    assert str(err).startswith("cannot open: ") and err.frames_decoded == 0


def test_truncated_copy_with_its_index_is_an_error_not_a_short_clip(tmp_path):
    data = CAM02.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.9)])  # demuxes without any FFmpeg error, just stops
    err = _reason(path)
    assert str(err).startswith("truncated: decoded 83 of 100 frames")
    assert err.frames_decoded == 83


def test_corrupt_data_mid_file_is_reported_after_the_frames_before_it(tmp_path):
    data = bytearray(CAM02.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 20_000] = np.random.default_rng(2).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path = tmp_path / "junk.mp4"
    path.write_bytes(bytes(data))
    delivered = 0
    with pytest.raises(VideoError, match=r"^corrupt after \d+ frames: ") as caught:
        for _ in iter_frames(path):
            delivered += 1
    assert 0 < caught.value.frames_decoded < 100
    assert delivered == caught.value.frames_decoded


def test_unreadable_image(tmp_path):
    (tmp_path / "photo.jpg").write_text("not a jpeg")
    assert str(_reason(tmp_path / "photo.jpg")) == "cannot open: not a readable image"


def test_zero_copy_planes_equal_pyav_packed_array(demo_videos):
    """YUV420Frame.from_av wraps the decoder's padded buffers; it must hold exactly PyAV's pixels."""
    import av
    import numpy as np

    with av.open(str(demo_videos[0])) as container:
        decoded = next(container.decode(video=0))
        view = YUV420Frame.from_av(decoded)
        np.testing.assert_array_equal(view.i420, decoded.to_ndarray(format="yuv420p"))
        matrix = np.array([[0.2, 0.05, 10.0], [-0.05, 0.2, 300.0]])
        packed = YUV420Frame.from_i420(decoded.to_ndarray(format="yuv420p"))
        np.testing.assert_array_equal(view.warp(matrix, 256), packed.warp(matrix, 256))
