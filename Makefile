# PoseBridge: video -> HPE -> pose-anchored cues -> zarr cache -> heads -> metrics.
# Every target is a thin call of the `posebridge` CLI inside .venv; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BENCH_VENV := .venv-bench
PB := $(BIN)/posebridge
ASSETS := assets
DL := $(ASSETS)/downloads
MODELS := $(ASSETS)/models
DEMO_VIDEOS := $(ASSETS)/videos/demo
IMAGES := $(ASSETS)/images
export POSEBRIDGE_MODELS ?= $(CURDIR)/$(MODELS)
export POSEBRIDGE_CACHE ?= $(CURDIR)/outputs/cache
export POSEBRIDGE_RUNS ?= $(CURDIR)/outputs/runs
# Nothing may reach a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# The optional mmpose backend lives in a venv of its own; the main .venv never gets mmpose.
MMPOSE_VENV := .venv-mmpose
BACKEND ?= embedded

VIDEOS ?= $(DEMO_VIDEOS)
DATASET ?=
SPLIT ?= synthetic_zsl
SPLITS ?= $(SPLIT)
ARGS ?=
ANNOTATIONS ?=
RUN ?=
VIDEO ?=
OUT ?=
CLASSES ?=
FORMAT ?=
SRC ?=

# Pinned upstream files: the embedded pose models come out of the MediaPipe wheel (Apache-2.0),
# the demo videos out of the Pose2Sim wheel (BSD-3-Clause), messi5.jpg out of Debian's opencv-doc.
MP_WHEEL := mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
DET_SHA := 9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c
LM_SHA := e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f
P2S_WHEEL := pose2sim-0.10.49-py3-none-any.whl

.PHONY: help setup models media demo extract synthetic train ablate eval predict render test bench-extract bench-train clean-outputs import import-ntu bench-real validate-real bench-shiftgcn bench-published bench-published-presets validate-published

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3" "setuptools==80.9.0" wheel
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

setup: $(BIN)/.installed models media ## create .venv, install, fetch the embedded models and demo media

models: $(MODELS)/pose_detection.tflite $(MODELS)/pose_landmark_full.tflite ## fetch the embedded BlazePose models (sha256-checked)

$(DL)/$(MP_WHEEL):
	@mkdir -p $(DL)
	$(BIN)/pip download -q --no-deps mediapipe==0.10.21 --python-version 3.11 --only-binary=:all: -d $(DL)

$(MODELS)/pose_detection.tflite $(MODELS)/pose_landmark_full.tflite &: $(DL)/$(MP_WHEEL) | $(BIN)/.installed
	@mkdir -p $(MODELS) $(DL)/mp
	unzip -o -q $(DL)/$(MP_WHEEL) 'mediapipe/modules/pose_detection/pose_detection.tflite' 'mediapipe/modules/pose_landmark/pose_landmark_full.tflite' -d $(DL)/mp
	echo "$(DET_SHA)  $(DL)/mp/mediapipe/modules/pose_detection/pose_detection.tflite" | sha256sum -c --quiet
	echo "$(LM_SHA)  $(DL)/mp/mediapipe/modules/pose_landmark/pose_landmark_full.tflite" | sha256sum -c --quiet
	cp $(DL)/mp/mediapipe/modules/pose_detection/pose_detection.tflite $(DL)/mp/mediapipe/modules/pose_landmark/pose_landmark_full.tflite $(MODELS)/

media: $(DEMO_VIDEOS)/cam01.mp4 $(IMAGES)/messi5.jpg ## fetch the demo videos (Pose2Sim) and messi5.jpg (opencv-doc)

$(DEMO_VIDEOS)/cam01.mp4: | $(BIN)/.installed
	@mkdir -p $(DL) $(DEMO_VIDEOS)
	$(BIN)/pip download -q --no-deps pose2sim==0.10.49 -d $(DL)
	unzip -o -q -j $(DL)/$(P2S_WHEEL) 'Pose2Sim/Demo_SinglePerson/videos/*.mp4' -d $(DEMO_VIDEOS)

$(IMAGES)/messi5.jpg:
	@mkdir -p $(DL) $(IMAGES)
	cd $(DL) && (ls opencv-doc_*.deb >/dev/null 2>&1 || apt-get download opencv-doc 2>/dev/null || (apt-get update -qq && apt-get download opencv-doc))
	dpkg-deb --fsys-tarfile $(DL)/opencv-doc_*.deb | tar -x -O ./usr/share/doc/opencv-doc/examples/data/messi5.jpg > $@

# BACKEND=mmpose runs from .venv-mmpose: make extract BACKEND=mmpose ARGS="--mmpose-checkpoint rtmpose-s.pth"
EXTRACT_VENV := $(if $(filter mmpose,$(BACKEND)),$(MMPOSE_VENV),$(VENV))
extract: setup $(EXTRACT_VENV)/bin/.installed ## stage 1 on VIDEOS (default: demo videos) into the cache of DATASET (default: the folder's name) [ANNOTATIONS=kinetics.csv] [BACKEND=mmpose]
	$(EXTRACT_VENV)/bin/posebridge extract --backend $(BACKEND) --videos "$(VIDEOS)" $(if $(DATASET),--dataset "$(DATASET)") $(if $(ANNOTATIONS),--annotations "$(ANNOTATIONS)") $(ARGS)

# The default split's data set is generated, not extracted: write its store first (a no-op once there).
synthetic_first = $(if $(filter synthetic_zsl,$(1)),$(PB) synthetic > /dev/null &&)

synthetic: $(BIN)/.installed ## write the SYNTHETIC benchmark's cue store (the data of the default SPLIT, synthetic_zsl)
	$(PB) synthetic $(ARGS)

train: $(BIN)/.installed ## stage 2: train + evaluate each of SPLITS (or SPLIT) from its cache
	$(call synthetic_first,$(SPLITS)) $(PB) train $(foreach s,$(SPLITS),--split $(s)) $(ARGS)

ablate: $(BIN)/.installed ## cue ablation (none/heatmap/features/all x seeds) on SPLIT, one table + plot [ARGS="--seeds 3"]
	$(call synthetic_first,$(SPLIT)) $(PB) ablate --split $(SPLIT) $(ARGS)

eval: $(BIN)/.installed ## re-evaluate a trained run folder: make eval RUN=outputs/runs/<split>/<name>/seed-0
	@test -n "$(RUN)" || { echo "error: give the run folder: make eval RUN=outputs/runs/<split>/<name>/seed-0" >&2; exit 1; }
	$(PB) eval "$(RUN)" $(ARGS)

predict: $(BIN)/.installed ## rank free class texts for VIDEO with a run: make predict VIDEO=a.mp4 RUN=... CLASSES="a;b;c"
	@test -n "$(VIDEO)" -a -n "$(RUN)" -a -n "$(CLASSES)" || { echo 'error: give VIDEO=file RUN=run folder CLASSES="a;b;c"' >&2; exit 1; }
	$(PB) predict $(VIDEO) --run "$(RUN)" --classes "$(CLASSES)" $(ARGS)

render: $(BIN)/.installed ## draw the cached skeleton + cue strength of VIDEO: make render VIDEO=a.mp4 OUT=a_cues.mp4
	@test -n "$(VIDEO)" -a -n "$(OUT)" || { echo "error: give VIDEO=file OUT=file.mp4|.gif|.png" >&2; exit 1; }
	$(PB) render "$(VIDEO)" --out "$(OUT)" $(ARGS)

import: $(BIN)/.installed ## a public skeleton release -> PYSKL pickle with its sides: make import FORMAT=nwucla SRC=all_sqe OUT=nwucla.pkl (formats: posebridge import --help)
	@test -n "$(FORMAT)" -a -n "$(SRC)" -a -n "$(OUT)" || { echo "error: give FORMAT=name SRC=folder OUT=new.pkl (the formats: $(PB) import --help)" >&2; exit 1; }
	$(PB) import "$(FORMAT)" "$(SRC)" --out "$(OUT)" $(ARGS)

import-ntu: $(BIN)/.installed ## make import FORMAT=ntu, under its old name: make import-ntu SKELETONS=nturgb+d_skeletons OUT=ntu.pkl
	@test -n "$(SKELETONS)" -a -n "$(OUT)" || { echo "error: give SKELETONS=folder of .skeleton files OUT=new.pkl" >&2; exit 1; }
	$(PB) import ntu "$(SKELETONS)" --out "$(OUT)" $(ARGS)

demo: setup ## the main job on the embedded default: extract the demo videos, then train+eval the synthetic split
	$(PB) demo

test: setup ## run the test suite (offline)
	$(BIN)/python -m pytest -q $(ARGS)

# MediaPipe brings its own OpenCV build, so the baseline lives in a venv of its own.
$(BENCH_VENV)/bin/.installed: pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade "pip==25.3" "setuptools==80.9.0" wheel
	$(BENCH_VENV)/bin/pip install -q -e ".[bench]"
	@touch $@

# BACKEND=mmpose: the mmpose backend's per-frame loop vs its batched pipeline, in .venv-mmpose.
BENCH_EXTRACT_VENV := $(if $(filter mmpose,$(BACKEND)),$(MMPOSE_VENV),$(BENCH_VENV))
bench-extract: setup $(BENCH_EXTRACT_VENV)/bin/.installed ## stage-1 benchmark vs MediaPipe's Pose solution, 1 vs 2 people [BACKEND=mmpose: per-frame vs batched]
	$(BENCH_EXTRACT_VENV)/bin/python bench/bench_extract.py --backend $(BACKEND) $(ARGS)

bench-train: setup ## stage-2 benchmark: loader, step time, demo split end to end [ARGS="--scale ntu60": training view, "--features-scale ntu60": feature folder, at NTU-60 size]
	$(BIN)/python bench/bench_train.py $(ARGS)

bench-real: $(BIN)/.installed ## stage 2 on real skeletons (JHMDB, MSR Action3D): chance, linear baseline, product rows [DATA=../shared/real] [ARGS="--quick" | "--fixes" | "--rows preset,baseline" (88 min)]
	$(BIN)/python bench/bench_real.py $(if $(DATA),--data "$(DATA)") $(ARGS)

validate-real: $(BIN)/.installed ## choose stage-2 defaults on the real sets' seen classes only (validation partitions) [DATA=../shared/real] [ARGS="--candidates adapter"]
	$(BIN)/python bench/real_validate.py $(if $(DATA),--data "$(DATA)") $(ARGS)

bench-published: $(BIN)/.installed ## PURLS's published NW-UCLA / UTD-MHAD table beside ours: baselines + defaults, 3 seeds [DATA=../shared/real] [ARGS="--changes"]
	$(BIN)/python bench/bench_published.py $(if $(DATA),--data "$(DATA)") $(ARGS)

bench-published-presets: $(BIN)/.installed ## the same table's --preset purls / dynapurls rows (MiniLM; about 70 min on 2 cores, ARGS="--seeds 1" 24 min)
	$(BIN)/python bench/bench_published.py --presets --no-defaults $(if $(DATA),--data "$(DATA)") $(ARGS)

validate-published: $(BIN)/.installed ## choose stage-2 defaults on the published cells' seen classes (+ JHMDB, MSR) only [DATA=../shared/real] [ARGS="--candidates align"]
	$(BIN)/python bench/validate_published.py $(if $(DATA),--data "$(DATA)") $(ARGS)

bench-shiftgcn: $(BIN)/.installed ## Shift-GCN pretraining s/epoch: the product's shift vs the gather baseline [ARGS="--width 64 --frames 64"]
	$(BIN)/python bench/bench_shiftgcn.py $(ARGS)

# chumpy (an mmpose dependency) must be built without build isolation: its setup.py imports pip.

$(MMPOSE_VENV)/bin/.installed: pyproject.toml
	@test -x $(MMPOSE_VENV)/bin/python || $(PYTHON) -m venv $(MMPOSE_VENV)
	$(MMPOSE_VENV)/bin/pip install -q --upgrade "pip==25.3" "setuptools==80.9.0" wheel
	$(MMPOSE_VENV)/bin/pip install -q --no-build-isolation --no-deps "chumpy==0.70"
	$(MMPOSE_VENV)/bin/pip install -q -e ".[test,mmpose]"
	@touch $@

.PHONY: test-mmpose
test-mmpose: models media $(MMPOSE_VENV)/bin/.installed ## build .venv-mmpose (mmpose extra) and test the mmpose backend
	$(MMPOSE_VENV)/bin/python -m pytest -q tests/stages/extract/test_mmpose_backend.py $(ARGS)

.PHONY: check-wheel
check-wheel: setup ## build the wheel, install it (not editable) in a fresh venv, run the CLI from outside the clone
	env -u POSEBRIDGE_MODELS -u POSEBRIDGE_CACHE -u POSEBRIDGE_RUNS PYTHON=$(PYTHON) .ci/wheel_check.sh

clean-outputs: ## delete caches and runs (keeps models and media)
	rm -rf outputs
