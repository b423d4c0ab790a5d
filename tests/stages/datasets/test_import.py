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
