"""`posebridge import-ntu`: NTU RGB+D .skeleton text files -> a PYSKL pickle that load_pyskl reads.

The files are written here in NTU's format (no NTU data is needed)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from posebridge.cache.pyskl import read_pyskl
from posebridge.stages.datasets.ntu_skeleton import body_slots, import_ntu_skeletons, read_skeleton_file
from posebridge.cache.errors import UserError
from posebridge.stages.train.data import load_pyskl


def joints_of(body: int, t: int) -> np.ndarray:
    """Distinct, recognisable x y z per (body, frame, joint)."""
    v = np.arange(25, dtype=np.float32)
    return np.stack([body + 0.01 * v, t + 0.001 * v, np.full(25, 2.0 + body, np.float32)], axis=1)


def skeleton_text(frames: list[list[int]]) -> str:
    """NTU text for `frames` = per frame the bodyIDs present (each body's joints from joints_of)."""
    lines = [str(len(frames))]
    for t, bodies in enumerate(frames):
        lines.append(str(len(bodies)))
        for body in bodies:
            lines.append(f"7200000000000{body} 0 1 1 1 1 0 0.1 -0.2 2")
            lines.append("25")
            for x, y, z in joints_of(body, t):
                lines.append(f"{x:.6f} {y:.6f} {z:.6f} 260.1 180.2 1020.3 540.4 0.1 0.2 0.3 0.9 2")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ntu_dir(tmp_path):
    d = tmp_path / "nturgb+d_skeletons"
    d.mkdir()
    # one body, subject 1 (xsub train), camera 1 (xview val), action 1
    (d / "S001C001P001R001A001.skeleton").write_text(skeleton_text([[1]] * 4))
    # a second body appears mid-clip (frames 2..4) and a frame without bodies; subject 3, camera 2, action 50
    (d / "S001C002P003R002A050.skeleton").write_text(skeleton_text([[5], [5], [5, 9], [9, 5], [], [5]]))
    (d / "S002C003P002R001A013.skeleton").write_text("")
    (d / "S002C003P002R001A014.skeleton").write_text(skeleton_text([[1]] * 3)[:-400])
    (d / "S002C003P002R001A015.skeleton").write_text(skeleton_text([[], []]))
    return d


def test_import_shapes_values_labels_and_splits(ntu_dir, tmp_path):
    out = tmp_path / "ntu.pkl"
    report = import_ntu_skeletons(ntu_dir, out)
    assert report.clips == 2
    assert [name for name, *_ in report.skipped] == [
        "S002C003P002R001A013.skeleton", "S002C003P002R001A014.skeleton", "S002C003P002R001A015.skeleton"]
    why = {name: reason for name, reason, _ in report.skipped}
    assert why["S002C003P002R001A013.skeleton"] == "empty"
    assert "truncated" in why["S002C003P002R001A014.skeleton"]
    assert why["S002C003P002R001A015.skeleton"] == "no body in any frame"
    # one line per bad file: name, why, what to do
    assert report.lines()[1:3] == ["skipped 3 files (bad input; the other files are imported):",
                                   "  S002C003P002R001A013.skeleton: empty; copy it again from the release, "
                                   "or move it out of the folder"]
    assert report.lines()[4] == ("  S002C003P002R001A015.skeleton: no body in any frame; nothing to do if NTU lists "
                                 "it among its samples with missing skeletons, else copy it again")

    data = read_pyskl(out)
    anns = {a["frame_dir"]: a for a in data["annotations"]}
    one, two = anns["S001C001P001R001A001"], anns["S001C002P003R002A050"]
    assert one["label"] == 0 and two["label"] == 49
    assert one["total_frames"] == 4 and two["total_frames"] == 6
    assert one["keypoint"].shape == (1, 4, 25, 3) and one["keypoint"].dtype == np.float32
    assert two["keypoint"].shape == (2, 6, 25, 3)
    np.testing.assert_allclose(one["keypoint"][0, 3], joints_of(1, 3), atol=1e-6)
    # body 5 (5 frames) is slot 0 throughout, even where it is listed second; body 9 is slot 1
    kp = two["keypoint"]
    for t in (0, 1, 2, 3, 5):
        np.testing.assert_allclose(kp[0, t], joints_of(5, t), atol=1e-6)
    for t in (2, 3):
        np.testing.assert_allclose(kp[1, t], joints_of(9, t), atol=1e-6)
    assert not kp[1, [0, 1, 4, 5]].any() and not kp[0, 4].any()  # absent bodies are zero
    assert data["split"] == {"xsub_train": ["S001C001P001R001A001"], "xsub_val": ["S001C002P003R002A050"],
                             "xview_train": ["S001C002P003R002A050"], "xview_val": ["S001C001P001R001A001"]}


def test_load_pyskl_reads_the_import(ntu_dir, tmp_path):
    out = tmp_path / "ntu.pkl"
    import_ntu_skeletons(ntu_dir, out)
    ds = load_pyskl(out, num_frames=8)
    assert ds.skeleton == "ntu25"
    assert sorted(ds.clip_ids) == ["S001C001P001R001A001", "S001C002P003R002A050"]
    assert tuple(ds.keypoints.shape[2:]) == (8, 25, 3)
    assert sorted(ds.labels.tolist()) == [0, 49]
    metas = dict(zip(ds.clip_ids, ds.meta))
    assert metas["S001C001P001R001A001"]["pyskl_split"] == ["xsub_train", "xview_val"]


def test_overlapping_ids_never_share_a_slot():
    # ids 1 and 2 overlap, then 3 overlaps 2 after 1 ended: M = 2, three ids in two slots
    frames = [[(b, None) for b in ids] for ids in ([1], [1, 2], [2], [2, 3], [3, 2], [3])]
    m, slots = body_slots(frames)
    assert m == 2
    assert all(len(set(row)) == len(row) for row in slots)
    # body 2 (most frames) is slot 0 throughout; 1 and 3 never meet, so they share slot 1
    assert slots == [[1], [1, 0], [0], [0, 1], [1, 0], [1]]


def test_bad_files_and_refusals(ntu_dir, tmp_path):
    out = tmp_path / "exists.pkl"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        import_ntu_skeletons(ntu_dir, out)
    assert out.read_bytes() == b"keep me"
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "S001C001P001R001A001.skeleton").write_text("")
    (only_bad / "S001C001P001R001A002.skeleton").write_text("2\n1\n")
    with pytest.raises(UserError, match="none of the 2 .skeleton files"):
        import_ntu_skeletons(only_bad, tmp_path / "new.pkl")
    assert not (tmp_path / "new.pkl").exists()
    with pytest.raises(UserError, match="holds no .skeleton files"):
        import_ntu_skeletons(tmp_path / "bad" / "..", tmp_path / "new.pkl")
    # a frame that declares 25 joints but stops short
    text = skeleton_text([[1]]).splitlines()
    (only_bad / "short.skeleton").write_text("\n".join(text[:-3]) + "\n")
    with pytest.raises(ValueError, match="truncated"):
        read_skeleton_file(only_bad / "short.skeleton")


def test_cli(ntu_dir, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", *args], capture_output=True,
                              text=True, timeout=120)

    assert "Usage" in cli("import-ntu", "--help").stdout
    out = tmp_path / "ntu.pkl"
    done = cli("import-ntu", str(ntu_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 2 clips" in done.stdout and "skipped 3 files" in done.stdout
    again = cli("import-ntu", str(ntu_dir), "--out", str(out))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [f"error: --out {out} already exists; give a new file name or "
                                                 f"delete it first"]
