"""Stage 2 on real skeletons (a benchmark script, not a test): JHMDB (2D, 14 classes) and MSR Action3D
(3D, 20 classes), each over the same fixed random seen/unseen partitions.

  1. convert  the sets under --data (default ../shared/real, see its README) into PYSKL + layout +
              split files under --work (default outputs/bench-real/); nothing is written into the repo
  2. rows     chance; the DeViSE-style linear baseline (bench/real_baseline.py); the product's heads
              via `posebridge train --split-file ... --pyskl ...` with each row's flags (ROWS below)
  3. report   one markdown table per set (ZSL top-1 and GZSL H as mean +- std over the partitions,
              seconds per row) and the protocol line, printed and written to <work>/results.md

Run it with `make bench-real` ([DATA=dir] [ARGS="--quick"]).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import real_baseline  # noqa: E402
import real_jhmdb  # noqa: E402
import real_msr  # noqa: E402
from real_common import RealSet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Shift-GCN rows at the bench's fixed size (width 16: 64-d features), to cut the cost of the 40
# encoders the bench pretrains (2 sets x 10 partitions x 2 weight-decay recipes): an epoch of 609
# JHMDB clips takes 7.2 s at width 16 / 32 frames against 58 s at width 64 / 64 frames. Even so the
# whole bench does not fit 30 minutes on a 2-core machine (docs/real-data-benchmark.md).
# Every product row resamples clips to 32 frames (the product's default since 2026-12-05; chosen on
# validation: 48.4 vs 47.0 at 64 frames here, bench/real_validate.py, at half the cost).
FRAMES = ["--num-frames", "32"]
SHIFTGCN = ["--skeleton-encoder", "shiftgcn", "--shiftgcn-width", "16", *FRAMES]
PURLS_LOSS = ["--adaptive-parts", "--symmetric-loss"]

# name, extra `posebridge train` flags. A row for another preset is one line here. The "fix:" rows
# are issue 16's before/after pairs: a "fix:" row changes one thing against the row above it. Rows
# that name no --feature-norm use the product's default.
ROWS: list[tuple[str, list[str] | None]] = [
    ("chance", None),
    ("baseline: pooled joints -> linear map (DeViSE)", None),
    ("heads + small GCN", ["--skeleton-encoder", "gcn", *FRAMES]),
    # the default's view alignment (3D only: MSR Action3D) against the loader's output, as before 2026-12-05
    ("heads + small GCN, no view alignment", ["--skeleton-encoder", "gcn", *FRAMES, "--view-align", "none"]),
    # the default's ZSL hubness correction against the plain cosines, as before 2026-12-05
    ("heads + small GCN, no hubness correction", ["--skeleton-encoder", "gcn", *FRAMES, "--hubness", "none"]),
    ("heads + Shift-GCN (frozen)", [*SHIFTGCN, "--feature-norm", "none"]),
    ("fix: + features L2 per cell (cell_l2)", [*SHIFTGCN, "--feature-norm", "cell_l2"]),
    ("fix: + reference Shift-GCN weight decay", [*SHIFTGCN, "--feature-norm", "cell_l2", "--shiftgcn-wd", "reference"]),
    ("+ adaptive parts + symmetric loss", [*SHIFTGCN, *PURLS_LOSS]),
    ("fix: + direct temperature (PURLS)", [*SHIFTGCN, *PURLS_LOSS, "--temperature", "direct"]),
    ("+ TTR (TRANSDUCTIVE)", [*SHIFTGCN, *PURLS_LOSS, "--ttr", "--gzsl-calibration", "none"]),
    ("preset purls", ["--preset", "purls", "--shiftgcn-width", "16", *FRAMES]),
    ("preset dynapurls (TRANSDUCTIVE)", ["--preset", "dynapurls", "--shiftgcn-width", "16", *FRAMES]),
]
SETS = {"jhmdb": (real_jhmdb, 4), "msr_action3d": (real_msr, 5)}  # module, unseen classes per partition
PARTITIONS, SEED = 10, 0
# Head epochs: each row's own (the product's or the preset's; None passes no --epochs). Shift-GCN
# pretraining: 10 epochs (default 140), fixed in advance to fit the time budget
# (docs/real-data-benchmark.md). Ten head epochs, as the first bench used, left the heads untrained
# on these small sets (about 40 optimizer steps; bench/real_validate.py measured it).
EPOCHS, SHIFTGCN_EPOCHS = None, 10
QUICK = {"partitions": 2, "epochs": 2, "shiftgcn_epochs": 2}


@dataclass
class Row:
    name: str
    zsl: list[float]
    h: list[float]
    seconds: float
    note: str = ""
    h_uncal: list[float] | None = None
    parts: list[int] | None = None   # partition index of each value (None: all, in order)

    def on(self, parts: list[int]) -> "Row":
        """This row restricted to some partitions (to compare with a row that finished fewer)."""
        pick = [self.parts.index(p) if self.parts else p for p in parts]
        sub = lambda v: None if v is None else [v[i] for i in pick]  # noqa: E731
        return Row(f"{self.name}, same {len(parts)} partitions", sub(self.zsl), sub(self.h), self.seconds,
                   "", sub(self.h_uncal), parts)


def default_data_dir() -> Path:
    """../shared/real next to the repository, or next to the main checkout when this is a git worktree."""
    here = ROOT.parent / "shared" / "real"
    if here.is_dir():
        return here
    try:
        common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.strip()
        main = Path(common).parent.parent / "shared" / "real"
        if main.is_dir():
            return main
    except (OSError, subprocess.CalledProcessError):
        pass
    return here


def data_dir(given: Path | None, holds: str) -> Path | None:
    """The real-data folder (`given`, else default_data_dir()), with the text encoders held offline;
    None after a one-line error when it is missing. `holds`: what the folder should hold, for the fix."""
    data = given or default_data_dir()
    if not data.is_dir():
        print(f"error: {data} does not exist; give --data DIR (the folder with {holds})", file=sys.stderr)
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return data


def convert(data: Path, work: Path, partitions: int) -> list[RealSet]:
    return [module.convert(data, work / "data", unseen=unseen, count=partitions, seed=SEED)
            for module, unseen in SETS.values()]


def class_text_matrix(real: RealSet, encoder_spec: str, cache_dir: Path) -> np.ndarray:
    """[K, E] name prototypes from the product's encoder and text bank (mean of the prompt embeddings)."""
    from posebridge.stages.train.text import ClassTexts, prompts
    from posebridge.stages.train.text_bank import build_text_bank
    from posebridge.stages.train.text_encoders import make_text_encoder

    texts = [ClassTexts(name=c["name"], templates=prompts(c["name"]), description=c["descriptions"][0])
             for c in real.classes]
    return build_text_bank(texts, make_text_encoder(encoder_spec), cache_dir).name.numpy()


def baseline_rows(real: RealSet, encoder_spec: str, cache_dir: Path) -> list[Row]:
    from posebridge.cache.layouts import load_layout
    from posebridge.cache.pyskl import read_pyskl

    start = time.perf_counter()
    data = read_pyskl(real.pyskl)
    layout = (json.loads(real.layout.read_text()) if real.layout.suffix == ".json"
              else load_layout(str(real.layout)).to_dict())  # a built-in layout, by name
    anns = {a["frame_dir"]: a for a in data["annotations"]}

    def side(key):
        rows = [anns[c] for c in data["split"][key]]
        return (np.stack([real_baseline.clip_features(a["keypoint"], layout) for a in rows]),
                np.array([a["label"] for a in rows]))

    (train_x, train_y), (test_x, test_y) = side(real.train_key), side(real.test_key)
    text = class_text_matrix(real, encoder_spec, cache_dir)
    names = [c["name"] for c in real.classes]
    chance = [real_baseline.chance(len(names), len(p)) for p in real.partitions]
    results = [real_baseline.evaluate_partition(train_x, train_y, test_x, test_y, text,
                                                np.array(sorted(names.index(n) for n in p)), seed=i)
               for i, p in enumerate(real.partitions)]
    seconds = time.perf_counter() - start
    return [Row(ROWS[0][0], [r.zsl for r in chance], [r.gzsl_h for r in chance], 0.0, "expected value",
                [r.gzsl_h for r in chance]),
            Row(ROWS[1][0], [r.zsl for r in results], [r.gzsl_h for r in results], seconds, "",
                [r.gzsl_h_uncal for r in results])]


def product_row(real: RealSet, name: str, flags: list[str], args, encoder_spec: str, work: Path,
                reuse: bool = False) -> Row:
    """One `posebridge train` call over the split file's partitions; metrics from its run folders.
    reuse: a row whose folder already holds every partition's metrics from the same command is read back."""
    runs = work / "runs" / real.name / encoder_spec.replace(":", "_").replace("/", "_") / _slug(name)
    cmd = [sys.executable, "-m", "posebridge.pipeline.cli", "train", "--split-file", str(real.split_file),
           "--pyskl", str(real.pyskl), "--cues", "none", *(["--epochs", str(args.epochs)] if args.epochs else []),
           "--shiftgcn-epochs", str(args.shiftgcn_epochs), "--text-encoder", encoder_spec,
           "--runs-dir", str(runs), *([] if args.calibrate else ["--gzsl-calibration", "none"]), *flags,
           *shlex.split(args.train_args)]
    # the command and the defaults it runs with: a change of a default leaves the command the same
    record = f"{shlex.join(cmd)}\n# defaults {_defaults_key()}"
    same = (runs / "command.txt").exists() and (runs / "command.txt").read_text() == record
    if getattr(args, "report_only", False):  # what an earlier (maybe interrupted) run left, nothing trained
        return _read_back(runs, name, len(real.partitions), same)
    if reuse and same:
        done = collect(runs, name, 0.0)
        if len(done.zsl) == len(real.partitions):
            done.note = "read back from an earlier run"
            return done
    shutil.rmtree(runs, ignore_errors=True)
    env = {**os.environ, "POSEBRIDGE_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    log = runs / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    (runs / "command.txt").write_text(record)
    note = ""
    if args.row_timeout is None:  # in this process: torch, the text encoder and the data load once, not per row
        code, out, err = _run_in_process(cmd[3:], env)
        log.write_text(f"$ {shlex.join(cmd)}\n{out}\n{err}")
        if code != 0:
            error = next((line for line in reversed(err.splitlines()) if line.strip()), f"exit {code}")
            note = f"failed: {error[:160]} (log: {log})"
    else:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.row_timeout)
            log.write_text(f"$ {shlex.join(cmd)}\n{done.stdout}\n{done.stderr}")
            if done.returncode != 0:
                error = next((line for line in reversed(done.stderr.splitlines()) if line.strip()),
                             f"exit {done.returncode}")
                note = f"failed: {error[:160]} (log: {log})"
        except subprocess.TimeoutExpired:
            note = f"stopped at --row-timeout {args.row_timeout:.0f} s"
    seconds = time.perf_counter() - start
    row = collect(runs, name, seconds)
    done_parts = len(row.zsl)
    if done_parts != len(real.partitions):
        note = "; ".join(filter(None, [note, f"{done_parts} of {len(real.partitions)} partitions"]))
    row.note = note
    return row


def _defaults_key() -> str:
    """The training defaults' identity: every TrainConfig default and every preset's values."""
    from posebridge.cache.fingerprint import fingerprint
    from posebridge.stages.train.config import TrainConfig
    from posebridge.stages.train.presets import PRESETS

    defaults = dataclasses.asdict(TrainConfig(split="-"))
    return fingerprint([defaults, {n: {k: v.value for k, v in p.items()} for n, p in PRESETS.items()}])[:16]


def _read_back(runs: Path, name: str, partitions: int, same_command: bool) -> Row:
    """A row from the run folders alone; seconds = from the command's start to its last metrics file."""
    if not same_command:
        return Row(name, [], [], 0.0, "no earlier run of this command")
    metrics = sorted(runs.rglob("metrics.json"), key=lambda p: p.stat().st_mtime)
    seconds = metrics[-1].stat().st_mtime - (runs / "command.txt").stat().st_mtime if metrics else 0.0
    row = collect(runs, name, seconds)
    row.note = "read back" + (f"; {len(row.zsl)} of {partitions} partitions" if len(row.zsl) < partitions else "")
    return row


def _run_in_process(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """`posebridge <argv>` in this process (exit code, stdout, stderr): the same entry point as the
    command line, without paying the imports and the text encoder's load for every row."""
    import contextlib
    import io
    import traceback

    from posebridge.pipeline import cli

    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(argv)
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except Exception:  # a crash in one row is that row's note, not the end of the bench
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def collect(runs: Path, name: str, seconds: float) -> Row:
    """The finished partitions' metrics under a row's runs folder (<split>/p<k>-<digest>/.../metrics.json)."""
    found = []
    for path in runs.rglob("metrics.json"):
        match = re.search(r"/p(\d+)-[0-9a-f]+/", str(path))
        found.append((int(match.group(1)) if match else len(found), json.loads(path.read_text())))
    found.sort(key=lambda f: f[0])
    metrics = [m for _, m in found]
    return Row(name, [m["zsl"]["top1"] for m in metrics], [m.get("gzsl", {}).get("h", math.nan) for m in metrics],
               seconds, "", [m.get("gzsl_uncalibrated", m.get("gzsl", {})).get("h", math.nan) for m in metrics],
               [k for k, _ in found])


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _cell(values: list[float]) -> str:
    mean, std = real_baseline.mean_std(values)
    return "-" if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _first(row: Row) -> str:
    """ZSL on partition 0: the one partition whose unseen classes no validation choice saw
    (bench/real_validate.py tunes on its seen classes)."""
    parts = row.parts if row.parts is not None else list(range(len(row.zsl)))
    return f"{100 * row.zsl[parts.index(0)]:.1f}" if 0 in parts else "-"


def table(real: RealSet, encoder_spec: str, rows: list[Row]) -> str:
    k, u = len(real.classes), len(real.partitions[0])
    lines = [f"### {real.name} ({k - u} seen / {u} unseen, {len(real.partitions)} partitions, text: {encoder_spec})",
             "", "| row | ZSL top-1 | GZSL H | H uncalibrated | ZSL p0 | runs | seconds | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {_cell(r.zsl)} | {_cell(r.h)} | {_cell(r.h_uncal or [])} | {_first(r)} | "
                     f"{len(r.zsl)} | {r.seconds:.0f} | {r.note} |")
    return "\n".join(lines)


def protocol_line(args, sets: list[RealSet]) -> str:
    gzsl = ("of the product rows uncalibrated (--gzsl-calibration none), the baseline's calibrated on seen classes"
            if not args.calibrate or "--gzsl-calibration none" in args.train_args
            else "calibrated by pseudo-unseen seen classes (TTR rows: none)")
    parts = ", ".join(f"{s.name} {len(s.classes) - len(s.partitions[0])}/{len(s.partitions[0])}" for s in sets)
    return (f"Protocol: {len(sets[0].partitions)} fixed random seen/unseen partitions per set (numpy default_rng({SEED}); "
            f"{parts}); every row on the same partitions; mean ± sample std over partitions, in %. "
            f"Product rows: `posebridge train --pyskl --split-file --cues none{f' --epochs {args.epochs}' if args.epochs else ''} "
            f"--shiftgcn-epochs {args.shiftgcn_epochs}{' ' + args.train_args if args.train_args else ''}`, GZSL {gzsl}. Product defaults chosen on the seen classes of partition 0 (bench/real_validate.py), bench sizes fixed in advance; nothing chosen on unseen test classes; ZSL p0 = partition 0 alone. "
            f"JHMDB split 1 (train/test lists), MSR Action3D cross-subject (1,3,5,7,9 / 2,4,6,8,10).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="Folder with jhmdb/ and msr_action3d/ (default ../shared/real).")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench-real", help="Work folder.")
    parser.add_argument("--quick", action="store_true", help="Smoke check: 2 partitions, 2 epochs.")
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="Head epochs of every product row (default: each row's own).")
    parser.add_argument("--shiftgcn-epochs", type=int, default=SHIFTGCN_EPOCHS)
    parser.add_argument("--text-encoder", action="append", default=None,
                        help="minilm (default) and/or clip:DIR (a local CLIP copy); repeat for both.")
    parser.add_argument("--rows", default="", help="Only rows whose name contains one of these comma-separated words.")
    parser.add_argument("--sets", default=",".join(SETS), help="Comma-separated sets to run.")
    parser.add_argument("--row-timeout", type=float, default=None,
                        help="Stop a product row after this many seconds and report the partitions it finished.")
    parser.add_argument("--fixes", action="store_true", help="Add the before/after rows of issue 16's fixes "
                                                                 "(cell_l2, reference weight decay, direct temperature).")
    parser.add_argument("--presets", action="store_true", help="Add the --preset purls / dynapurls rows (100 head "
                                                                "epochs each: about 2.2 min per partition here).")
    parser.add_argument("--calibrate", action="store_true", help="Calibrated GZSL for the product rows too (the "
                                                                 "pseudo-unseen model doubles their training time).")
    parser.add_argument("--report-only", action="store_true", help="Train nothing: print the table from the run "
                                                                    "folders an earlier (maybe interrupted) run left.")
    parser.add_argument("--reuse", action="store_true", help="Read back a row whose run folders hold every "
                                                              "partition from the same command (only when stage 2 "
                                                              "has not changed since: the command does not name the code).")
    parser.add_argument("--train-args", default="", help="Extra flags for every product row, e.g. '--gzsl-calibration none'.")
    parser.add_argument("--out", type=Path, default=None, help="Results file (default <work>/results.md).")
    args = parser.parse_args(argv)
    if args.quick:
        args.partitions, args.epochs, args.shiftgcn_epochs = (QUICK[k] for k in ("partitions", "epochs", "shiftgcn_epochs"))
    data = data_dir(args.data, "jhmdb/ and msr_action3d/")
    if data is None:
        return 1
    encoders = args.text_encoder or ["minilm"]
    wanted = [w.strip().lower() for w in args.rows.split(",") if w.strip()]
    rows = [(n, f) for n, f in ROWS if (not wanted or any(w in n.lower() for w in wanted))
            and (args.fixes or bool(wanted) or not n.startswith("fix:"))  # --rows naming a row includes it
            and (args.presets or bool(wanted) or not n.startswith("preset"))]

    start = time.perf_counter()
    sets = [s for s in convert(data, args.work, args.partitions) if s.name in args.sets.split(",")]
    print(f"converted {', '.join(s.name for s in sets)} from {data} into {args.work / 'data'}", flush=True)
    sections = []
    for real in sets:
        for spec in encoders:
            results = []
            if any(f is None for _, f in rows):
                results += [r for r in baseline_rows(real, spec, args.work / "cache") if any(r.name == n for n, _ in rows)]
            baseline = next((r for r in results if r.name == ROWS[1][0]), None)
            for name, flags in rows:
                if flags is not None:
                    print(f"{real.name} / {spec}: {name} ...", flush=True)
                    results.append(product_row(real, name, flags, args, spec, args.work, reuse=args.reuse))
                    partial = results[-1].parts
                    if baseline and partial and len(partial) < len(real.partitions):
                        results.append(baseline.on(partial))
            sections.append(table(real, spec, results))
            print("\n" + sections[-1] + "\n", flush=True)
    total = time.perf_counter() - start
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    text = "\n\n".join([f"# Real-data bench, {stamp}, commit {commit or '?'}, {platform.machine()}, "
                        f"{os.cpu_count()} CPUs{' (--quick)' if args.quick else ''}",
                        protocol_line(args, sets), *sections, f"Total: {total:.0f} s"]) + "\n"
    out = args.out or args.work / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{protocol_line(args, sets)}\nTotal: {total:.0f} s; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
