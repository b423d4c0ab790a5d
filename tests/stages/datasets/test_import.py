"""`posebridge import FORMAT SRC --out FILE`: the one driver and its command line, on files written here
in each format's own layout (tests/stages/datasets/test_formats_*.py test the formats one by one)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import read_pyskl
from posebridge.stages.datasets.skeleton_formats import FORMATS, import_release
from tests.stages.datasets.test_ntu_skeleton import skeleton_text


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture
def ntu_dir(tmp_path):
    d = tmp_path / "nturgb+d_skeletons"
    d.mkdir()
    (d / "S001C001P001R001A001.skeleton").write_text(skeleton_text([[1]] * 4))
    (d / "S001C002P003R001A002.skeleton").write_text(skeleton_text([[1]] * 3))
    (d / "S001C003P002R001A003.skeleton").write_text("")
    return d


def test_every_format_says_what_the_driver_needs():
    for name, fmt in FORMATS.items():
        assert fmt.name == name and fmt.summary and fmt.files and fmt.folder and fmt.fix
        assert callable(fmt.scan) and callable(fmt.read) and callable(fmt.sides)


def test_import_ntu_records_the_layout_and_the_alias_agrees(ntu_dir, tmp_path):
    done = cli("import", "ntu", str(ntu_dir), "--out", str(tmp_path / "a.pkl"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (f"wrote {tmp_path / 'a.pkl'}: 2 clips (xsub_train 1, xsub_val 1, xview_train 1, "
                        f"xview_val 1), layout ntu25")
    assert lines[1:] == ["skipped 1 files (bad input; the other files are imported):",
                         "  S001C003P002R001A003.skeleton: empty; copy it again from the release, or move it out "
                         "of the folder"]
    assert read_pyskl(tmp_path / "a.pkl")["layout"] == "ntu25"
    alias = cli("import-ntu", str(ntu_dir), "--out", str(tmp_path / "b.pkl"))
    assert alias.returncode == 0, alias.stderr
    assert alias.stdout.replace("b.pkl", "a.pkl") == done.stdout
    assert (tmp_path / "a.pkl").read_bytes() == (tmp_path / "b.pkl").read_bytes()


def test_user_mistakes_are_one_line_and_write_nothing(ntu_dir, tmp_path):
    out = tmp_path / "x.pkl"
    for args, message in [
        (["import", "ntux", str(ntu_dir), "--out", str(out)], "unknown format 'ntux'; use one of ntu"),
        (["import", "ntu", str(ntu_dir), "--out", str(out), "--split-dir", str(tmp_path)],
         "--split-dir: not an option of format ntu; leave it out"),
        (["import", "ntu", str(tmp_path / "nope"), "--out", str(out)], "is not a folder; give NTU RGB+D's folder"),
        (["import", "ntu", str(tmp_path), "--out", str(out)], "holds no .skeleton files; give NTU RGB+D's folder"),
    ]:
        done = cli(*args)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nturgb+d_skeletons"]


def test_an_existing_out_is_refused_before_anything_is_read(ntu_dir, tmp_path):
    out = tmp_path / "x.pkl"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        import_release("ntu", tmp_path / "no such folder", out)  # refused before SRC is even looked at
    assert out.read_bytes() == b"keep me"


def nwucla_release(folder, clips_per_view: int = 2):
    """An all_sqe folder of 4 actions x 3 views: each action swings the right wrist at its own speed."""
    import json

    import numpy as np

    from posebridge.stages.datasets.skeleton_formats.nwucla import ACTIONS

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for label, action in enumerate(ACTIONS[:4]):
        for view in (1, 2, 3):
            for subject in range(1, clips_per_view + 1):
                t = 12 + subject
                xyz = rng.normal(0, 0.02, size=(t, 20, 3)) + np.linspace(0, 1, 20)[None, :, None]
                xyz[:, 3, 1] += 0.8  # head above the hip centre
                xyz[:, 10, 1] += 0.3 * np.sin(np.linspace(0, (label + 1) * np.pi, t))
                name = f"a{action:02d}_s{subject:02d}_e00_v{view:02d}"
                (folder / f"{name}.json").write_text(json.dumps(
                    {"file_name": name, "skeletons": np.round(xyz, 5).tolist(), "label": label + 1}))


def test_import_nwucla_then_train_on_it_without_a_layout(tmp_path):
    """The command line end to end: the import's pickle trains with nothing but a split file."""
    import json

    nwucla_release(tmp_path / "all_sqe")
    (tmp_path / "all_sqe" / "a05_s01_e00_v01.json").write_text('{"file_name": "a05_s01_e00_v01", "skel')  # cut
    out = tmp_path / "nwucla.pkl"
    done = cli("import", "nwucla", str(tmp_path / "all_sqe"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"wrote {out}: 24 clips (xview_train 16, xview_val 8), layout kinect_v1",
        "skipped 1 files (bad input; the other files are imported):",
        "  a05_s01_e00_v01.json: truncated JSON (ends before the document closes); copy it again from the release "
        "(all_sqe.zip)"]
    views = {a["frame_dir"]: a["meta"]["view"] for a in read_pyskl(out)["annotations"]}
    assert views["a01_s01_e00_v03"] == 3 and sorted(set(views.values())) == [1, 2, 3]  # each record has its view
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({  # no "skeleton": the pickle says kinect_v1
        "name": "ucla_tiny", "classes": ["pick up with one hand", "pick up with two hands", "drop trash", "walk around"],
        "train": "xview_train", "test": "xview_val", "unseen": ["drop trash"]}))
    runs = tmp_path / "runs"
    trained = cli("train", "--pyskl", str(out), "--split-file", str(split_file), "--cues", "none", "--epochs", "1",
                  "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "cache"), "--batch-size", "8",
                  "--skeleton-encoder", "gcn", "--gzsl-calibration", "none", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    (metrics,) = runs.glob("ucla_tiny/minilm-cues-none-*/seed-0/metrics.json")
    assert 0.0 <= json.loads(metrics.read_text())["zsl"]["top1"] <= 1.0
    from posebridge.stages.train.checkpoint import load_checkpoint

    model_args = load_checkpoint(metrics.parent / "checkpoint.pt")["model_args"]
    assert model_args["skeleton_layout"]["name"] == "kinect_v1"  # read from the pickle, not guessed by count
    again = cli("import", "nwucla", str(tmp_path / "all_sqe"), "--out", str(out))
    assert again.returncode == 1 and again.stderr == f"error: --out {out} already exists; give a new file name or " \
                                                     f"delete it first\n"


def test_every_format_imports_to_a_pickle_the_loader_reads_without_a_layout(tmp_path):
    """One small release per format, through the driver; the loader picks each layout from the file."""
    import json

    import scipy.io

    from posebridge.stages.train.data import load_pyskl
    from tests.stages.datasets import test_format_kinetics_skeleton as kin
    from tests.stages.datasets import test_format_pkummd as pku
    from tests.stages.datasets import test_format_utdmhad as utd

    utd_dir = tmp_path / "utd"
    utd_dir.mkdir()
    for name in ("a1_s1_t1", "a2_s2_t1"):
        scipy.io.savemat(utd_dir / f"{name}_skeleton.mat", {"d_skel": utd.d_skel(5)})
    pku_dir = tmp_path / "pku"
    for folder in ("PKU_Skeleton_Renew", "Train_Label_PKU_final", "Split"):
        (pku_dir / folder).mkdir(parents=True)
    (pku_dir / "PKU_Skeleton_Renew" / "0002-L.txt").write_text(pku.skeleton_text(9))
    (pku_dir / "Train_Label_PKU_final" / "0002-L.txt").write_text("3,1,4,2\n7,5,9,1\n")
    (pku_dir / "Split" / "cross-view.txt").write_text("Training videos: \n0002-L\nValidataion videos: \n0002-M\n")
    kin_dir = tmp_path / "kinetics-skeleton"
    for side, label in (("train", 4), ("val", 7)):
        (kin_dir / f"kinetics_{side}").mkdir(parents=True)
        (kin_dir / f"kinetics_{side}" / f"v{side}.json").write_text(json.dumps(
            kin.video({1: [kin.person(0.2, 0.9)], 2: [kin.person(0.3, 0.8)]}, "x", label)))
    expected = {"utdmhad": (utd_dir, "kinect_v1", {"xsub_train": 1, "xsub_val": 1}, (20, 3)),
                "pkummd": (pku_dir / "PKU_Skeleton_Renew", "ntu25", {"xview_train": 2, "xview_val": 0}, (25, 3)),
                "kinetics-skeleton": (kin_dir, "openpose18", {"train": 1, "val": 1}, (18, 2))}
    for name, (src, layout, sides, joints) in expected.items():
        out = tmp_path / f"{name}.pkl"
        report = import_release(name, src, out)
        assert (report.layout, report.splits, report.skipped) == (layout, sides, [])
        data = read_pyskl(out)
        assert data["layout"] == layout and data["annotations"][0]["keypoint"].shape[2:] == joints
        assert load_pyskl(out, 8).skeleton == layout


def test_two_copies_of_a_clip_and_a_failing_side_leave_nothing(tmp_path):
    import shutil

    nwucla_release(tmp_path / "release" / "all_sqe", clips_per_view=1)
    shutil.copytree(tmp_path / "release" / "all_sqe", tmp_path / "release" / "all_sqe copy")
    out = tmp_path / "out" / "x.pkl"
    with pytest.raises(UserError, match=r"clip a01_s01_e00_v01 comes from both .* keep one copy of each file"):
        import_release("nwucla", tmp_path / "release", out)
    # PKU-MMD: the files read, then the official list contradicts them: no pickle, no temporary file
    from tests.stages.datasets.test_format_pkummd import skeleton_text

    pku = tmp_path / "pku"
    for folder in ("PKU_Skeleton_Renew", "Train_Label_PKU_final", "Split"):
        (pku / folder).mkdir(parents=True)
    (pku / "PKU_Skeleton_Renew" / "0002-L.txt").write_text(skeleton_text(5))
    (pku / "Train_Label_PKU_final" / "0002-L.txt").write_text("1,1,5,2\n")
    (pku / "Split" / "cross-subject.txt").write_text("Training videos: \n0002-L\nValidataion videos: \n0002-L\n")
    with pytest.raises(UserError, match="1 videos are on both sides"):
        import_release("pkummd", pku, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    (pku / "Split" / "cross-subject.txt").write_text("Training videos: \n0002-L\nValidataion videos: \n0003-L\n")
    report = import_release("pkummd", pku, out)
    assert report.splits == {"xsub_train": 1, "xsub_val": 0}
    assert read_pyskl(out)["annotations"][0]["meta"] == {"video": "0002-L", "video_id": 2, "view": "L", "line": 1,
                                                         "start": 1, "end": 5, "confidence": 2}
