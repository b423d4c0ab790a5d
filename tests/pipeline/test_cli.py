"""The command line: every --help works, user mistakes are one line with exit code 1."""
from __future__ import annotations

import subprocess
import sys

import pytest



def _all_commands() -> list[list[str]]:
    """Every command and subcommand of the typer app (a new one cannot be left untested)."""
    import typer.main

    from posebridge.pipeline.cli import app

    out = [[]]

    def walk(group, prefix):
        for name, command in sorted(getattr(group, "commands", {}).items()):
            out.append([*prefix, name])
            walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = _all_commands()


def run(*args: str, env_cache: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_cache:
        env["POSEBRIDGE_CACHE"] = env_cache
    return subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "posebridge")
def test_help(command):  # every command, enumerated from the app
    out = run(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def test_the_enumeration_sees_the_known_commands():
    names = {" ".join(c) for c in COMMANDS}
    assert {"extract", "cache info", "cache compact", "train", "setup", "splits", "demo"} <= names


@pytest.mark.parametrize("args, expected", [
    (["extract"], "Missing option '--videos'"),
    (["extract", "--videos", "/no/such/dir"], "/no/such/dir"),
    (["extract", "--videos", ".", "--stride", "0"], "--stride"),
    (["extract", "--videos", ".", "--backend", "openpose"], "openpose"),
    (["extract", "--videos", ".", "--levels", "fpn64,nope"], "--levels"),
    (["extract", "--videos", ".", "--joints", "0,40"], "--joints"),
    (["extract", "--videos", ".", "--max-frames", "0"], "--max-frames"),
    (["extract", "--videos", ".", "--max-persons", "0"], "--max-persons"),
    (["extract", "--videos", ".", "--backend", "mmpose", "--batch-size", "0"], "--batch-size"),
    (["extract", "--videos", ".", "--batch-size", "4"], "apply to --backend mmpose"),
    (["extract", "--videos", ".", "--shard", "3/3"], "--shard"),
    (["splits", "ntu60_55"], "did you mean: ntu60_55_5"),
    (["train", "--split", "ntu60_55"], "did you mean"),
    (["train", "--split", "ntu60_55_5", "--cues", "everything"], "--cues"),
    (["train", "--split", "kinetics200_180_20"], "posebridge extract --videos /path/to/kinetics400/videos --dataset "
                                                 "kinetics400 --annotations /path/to/kinetics.csv"),
    (["train", "--split", "uwa3d_24_6"], "split uwa3d_24_6 has no reachable data: "),
    (["train", "--split", "nwucla_8_2"], "or train skeleton-only: --pyskl FILE --cues none"),
    (["train", "--split", "kinetics200_180_20", "--guess-kinetics200"], "No such option: --guess-kinetics200"),
    (["eval", "/no/such/run"], "/no/such/run does not exist"),
    (["export", "nothing-here", "--out", "x.pkl"], "no cache store"),
    (["frobnicate"], "No such command"),
    (["predict", "/no/such/clip.mp4", "--run", "/no/run", "--classes", "a;b"], "/no/such/clip.mp4 does not exist"),
    (["predict", "README.md", "--run", ".", "--classes", "a;b"], "not a video"),
    (["predict", "Makefile", "--run", "/no/run", "--classes-file", "/no/classes.txt"], "/no/classes.txt"),
    (["render", "/no/such/clip.mp4", "--out", "x.mp4"], "/no/such/clip.mp4 does not exist"),
    (["render", "README.md", "--out", "x.mp4", "--stride", "0"], "--stride"),
])
def test_user_mistakes_are_one_line_and_exit_1(args, expected, tmp_path):
    out = run(*args, env_cache=str(tmp_path))
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("INFO:")]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in out.stderr


def test_mmpose_backend_without_its_extra_says_how_to_get_it(tmp_path):
    """The main .venv never has mmpose (it lives in .venv-mmpose): asking for it is a one-line hint."""
    import importlib.util

    if importlib.util.find_spec("mmpose") is not None:
        pytest.skip("mmpose is installed here (.venv-mmpose); its tests are tests/stages/extract/test_mmpose_backend.py")
    (tmp_path / "clip.mp4").write_bytes(b"\0")  # the videos are checked first: give it one to list
    out = run("extract", "--videos", str(tmp_path), "--backend", "mmpose", env_cache=str(tmp_path))
    assert out.returncode == 1
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "make test-mmpose" in lines[0]


def test_the_cli_bounds_openmp_spinning_before_torch_loads_and_a_users_value_wins():
    """libgomp reads GOMP_SPINCOUNT once, when torch loads it: the CLI package sets it first."""
    import os
    import subprocess
    import sys

    code = "import posebridge.pipeline.cli, os, torch; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "10000"
    assert subprocess.run([sys.executable, "-c", code], env={**env, "GOMP_SPINCOUNT": "7"}, capture_output=True,
                          text=True, check=True).stdout.strip() == "7"
