"""Published numbers side by side with ours (a benchmark script, not a test): PURLS's zero-shot table
on NW-UCLA and UTD-MHAD (supplement Tab. 8), the only published ZSSAR benchmarks whose data can be
had here.

  1. import  NW-UCLA's all_sqe/*.json and UTD-MHAD's *_skeleton.mat under --data (default
             ../shared/real) with `posebridge import`, into <work>/data/ (nothing is written in the repo)
  2. rows    the published rows (bench/published/purls_tab8.json, with their source); chance;
             three same-run linear baselines written here (a DeViSE-style map onto class-name prompts,
             PURLS's "Global": one linear map onto the global description, and Global on joints turned
             to the body first, as the family's pre-normalised data its features come from); the product's
             defaults (`posebridge train --split CELL --pyskl FILE --cues none`); with --changes, the
             product with one setting changed per row (the per-change tables of docs/published-benchmark.md);
             with --presets, `--preset purls` / `--preset dynapurls` (MiniLM; long: see the docs)
  3. report  one table per text encoder: ZSL top-1 on the unseen classes, mean ± std over --seeds
             seeds (one split per cell, so the seeds are the spread), seconds and training clips/s
             per row; printed and written to <work>/results.md

Run it with `make bench-published` ([DATA=dir] [ARGS="--changes"]). Nothing here is chosen on the
unseen classes of a cell: the baselines' settings and the product's defaults come from validation
partitions of the seen classes (bench/validate_published.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_real  # noqa: E402
import real_baseline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = Path(__file__).parent / "published" / "purls_tab8.json"
# data set -> (importer format, folder under --data holding its files)
SETS = {"nwucla": ("nwucla", "nwucla/all_sqe"), "utdmhad": ("utdmhad", "utdmhad")}
SEEDS = 3

# Product rows: (name, change group, extra `posebridge train` flags). A change group's rows are one
# per-change table (the defaults row is each table's "before" or "after"); a new row is one line.
DEFAULTS = "product defaults"
CHANGES: list[tuple[str, str, list[str]]] = [
    ("view alignment: none (before 2026-12-05)", "view alignment (3D)", ["--view-align", "none"]),
    ("view alignment: first frame", "view alignment (3D)", ["--view-align", "first"]),
    ("text: class-name prompts (mix 1)", "texts and prototype", ["--proto-mix", "1.0"]),
    ("text: name + description (mix 0.5)", "texts and prototype", ["--proto-mix", "0.5"]),
    # the defaults already add the body-part and phase scores (score_part = score_temporal = 0.3);
    # PURLS's alignment of them: each class's part / phase texts attend over joints x time
    ("text: parts and phases aligned as PURLS (adaptive parts + symmetric loss)", "texts and prototype",
     ["--adaptive-parts", "--symmetric-loss"]),
    ("prototype: + text adapter", "texts and prototype", ["--text-adapter"]),
    ("encoder: frozen Shift-GCN (w16, T32, 30 pretraining epochs)", "skeleton encoder",
     ["--skeleton-encoder", "shiftgcn", "--shiftgcn-width", "16", "--num-frames", "32", "--shiftgcn-epochs", "30"]),
    ("feature norm: none (Shift-GCN)", "feature normalisation",
     ["--skeleton-encoder", "shiftgcn", "--shiftgcn-width", "16", "--num-frames", "32", "--shiftgcn-epochs", "30",
      "--feature-norm", "none"]),
    ("temperature: direct (PURLS)", "temperature", ["--temperature", "direct"]),
    ("temperature: learnt from 0.03 (was 0.07)", "temperature", ["--temperature-init", "0.03"]),
    ("loss: semantic soft targets 0.5", "loss targets", ["--soft-targets", "0.5"]),
    ("hubness: none (plain cosines, before 2026-12-05)", "hubness correction", ["--hubness", "none"]),
    ("epochs: 60", "epochs and frames", ["--epochs", "60"]),
    ("frames: 64 (before 2026-12-05)", "epochs and frames", ["--num-frames", "64"]),
    ("defaults before 2026-12-05 (64 frames, no view alignment, no hubness correction)", "epochs and frames",
     ["--num-frames", "64", "--view-align", "none", "--hubness", "none"]),
]
PRESETS: list[tuple[str, list[str]]] = [
    ("preset purls", ["--preset", "purls"]),
    ("preset dynapurls (TRANSDUCTIVE)", ["--preset", "dynapurls"]),
]
QUICK = {"seeds": 1, "epochs": 2}


@dataclass
class Row:
    name: str
    zsl: dict[str, list[float]] = field(default_factory=dict)   # cell -> one value per seed (fractions)
    seconds: float = 0.0
    train_clips: int = 0                                          # clips x epochs seen in training, all cells
    note: str = ""
    group: str = ""
    recall: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # cell -> unseen class -> per seed


@dataclass
class Cell:
    name: str            # the published split's name (registry)
    dataset: str
    pyskl: Path
    classes: list[str]
    unseen: list[int]    # class indices
    train_key: str
    test_key: str


# --- data -------------------------------------------------------------------------------------

def import_sets(data: Path, work: Path, datasets: set[str]) -> dict[str, Path]:
    """`posebridge import` each set once (an existing pickle is reused: the importer refuses to overwrite)."""
    out = {}
    for dataset, (fmt, sub) in SETS.items():
        if dataset not in datasets:
            continue
        pkl = work / "data" / f"{dataset}.pkl"
        if not pkl.exists():
            pkl.parent.mkdir(parents=True, exist_ok=True)
            code, text, err = bench_real._run_in_process(["import", fmt, str(data / sub), "--out", str(pkl)], {})
            if code != 0:
                raise SystemExit(f"error: posebridge import {fmt} {data / sub} failed: {err.strip() or text.strip()}")
            print(text.strip().splitlines()[0], flush=True)
        out[dataset] = pkl
    return out


def cells_of(published: dict, pickles: dict[str, Path], wanted: list[str]) -> list[Cell]:
    from posebridge.stages.splits.registry import get_split

    cells = []
    for name in published["cells"]:
        if wanted and not any(w in name for w in wanted):
            continue
        split = get_split(name)
        if split.dataset not in pickles:
            continue
        raw = json.loads((ROOT / "stages" / "splits" / "data" / "split_files" / f"{name}.json").read_text())
        cells.append(Cell(name, split.dataset, pickles[split.dataset], [c.name for c in split.classes],
                          sorted(int(i) for i in split.unseen), raw["train"], raw["test"]))
    return cells


# --- the same-run baselines ---------------------------------------------------------------

def class_text_matrices(cell: Cell, encoder_spec: str, cache_dir: Path) -> dict[str, np.ndarray]:
    """[K, E] class-name prototypes (mean of the prompt embeddings, as the heads' name prototype) and
    global-description embeddings, from the product's encoder, text bank and the split's texts."""
    from posebridge.stages.splits.registry import get_split
    from posebridge.stages.train.text import class_texts
    from posebridge.stages.train.text_bank import build_text_bank
    from posebridge.stages.train.text_encoders import make_text_encoder

    bank = build_text_bank(class_texts(get_split(cell.name)), make_text_encoder(encoder_spec), cache_dir)
    return {"name": bank.name.numpy(), "description": bank.description.numpy()}


# (row, which class texts, joints turned to the body first): PURLS's features come from skeletons
# the family pre-normalised (origin, hip -> spine and shoulders onto axes), so the turned Global is
# the reading of its protocol; the unturned one shows what the turn alone is worth.
BASELINES = [("baseline: DeViSE-style map onto class-name prompts", "name", False),
             ("baseline: Global, one linear map onto the global description (PURLS's)", "description", False),
             ("baseline: Global on body-turned joints (first frame, as PreNormalize3D)", "description", True)]


def turned_to_body(keypoint: np.ndarray, layout) -> np.ndarray:
    """[M, T, V, 3] PYSKL joints -> centred on the first frame's body centre and turned into the main
    actor's first-frame body frame by the product's own view alignment (2D clips come back as they were)."""
    from posebridge.stages.train.view_align import align_clips

    x = np.asarray(keypoint, np.float32)
    present = np.abs(x).sum(axis=-1) > 0                                   # [M, T, V]
    first = int(np.argmax(present[0].any(axis=-1)))
    x = np.where(present[..., None], x - x[0, first, list(layout.centre)].mean(axis=0), 0.0)
    turned, _ = align_clips(x[None], present[None].astype(np.float32), layout, "first")
    return turned[0]


def baseline_rows(cells: list[Cell], encoder_spec: str, cache_dir: Path, seeds: int) -> list[Row]:
    from posebridge.cache.layouts import load_layout
    from posebridge.cache.pyskl import read_pyskl

    rows = [Row(name) for name, _, _ in BASELINES]
    # cells of one data set share its file and sides: each side's features are made once per (file, turn)
    features: dict[tuple[Path, str, bool], tuple[np.ndarray, np.ndarray]] = {}
    files: dict[Path, tuple[dict, dict, object]] = {}  # file -> (its data, clips by id, layout)
    for cell in cells:
        start = time.perf_counter()
        if cell.pyskl not in files:
            data = read_pyskl(cell.pyskl)
            files[cell.pyskl] = (data, {a["frame_dir"]: a for a in data["annotations"]},
                                 load_layout(data.get("layout", "kinect_v1")))
        data, anns, layout = files[cell.pyskl]

        def side(key, turn):
            if (cell.pyskl, key, turn) not in features:
                clips = [anns[c] for c in data["split"][key]]
                joints = [turned_to_body(a["keypoint"], layout) if turn else a["keypoint"] for a in clips]
                features[cell.pyskl, key, turn] = (np.stack([real_baseline.flat_features(j, layout.centre) for j in joints]),
                                                   np.array([a["label"] for a in clips]))
            return features[cell.pyskl, key, turn]

        texts = class_text_matrices(cell, encoder_spec, cache_dir)
        for row, (_, kind, turn) in zip(rows, BASELINES):
            (train_x, train_y), (test_x, test_y) = side(cell.train_key, turn), side(cell.test_key, turn)
            row.zsl[cell.name] = [real_baseline.zsl_only(train_x, train_y, test_x, test_y, texts[kind],
                                                         np.array(cell.unseen), seed, real_baseline.GLOBAL)
                                  for seed in range(seeds)]
            row.train_clips += int(np.isin(train_y, np.setdiff1d(np.arange(len(cell.classes)), cell.unseen)).sum()
                                   * real_baseline.GLOBAL.epochs * seeds)
        elapsed = time.perf_counter() - start
        for row in rows:
            row.seconds += elapsed / len(rows)
    return rows


# --- product rows -----------------------------------------------------------------------------

def product_row(cells: list[Cell], name: str, flags: list[str], args, encoder_spec: str, group: str = "") -> Row:
    """`posebridge train --split CELL --pyskl FILE --cues none --seeds N` per cell, in this process."""
    row = Row(name, group=group)
    slug = f"{encoder_spec.replace(':', '_').replace('/', '_')}/{bench_real._slug(name)}"
    for cell in cells:
        runs = args.work / "runs" / slug / cell.name
        cmd = ["train", "--split", cell.name, "--pyskl", str(cell.pyskl), "--cues", "none", "--seeds", str(args.seeds),
               "--text-encoder", encoder_spec, "--runs-dir", str(runs), "--gzsl-calibration", "none",
               *(["--epochs", str(args.epochs)] if args.epochs else []), *flags, *shlex.split(args.train_args)]
        shutil.rmtree(runs, ignore_errors=True)
        runs.mkdir(parents=True)
        (runs / "command.txt").write_text("posebridge " + shlex.join(cmd))
        env = {"POSEBRIDGE_CACHE": str(args.work / "cache")}
        start = time.perf_counter()
        code, out, err = bench_real._run_in_process(cmd, env)
        row.seconds += time.perf_counter() - start
        (runs / "train.log").write_text(f"{out}\n{err}")
        if code != 0:
            error = next((line for line in reversed(err.splitlines()) if line.strip()), f"exit {code}")
            row.note = f"{cell.name} failed: {error[:160]}"
            continue
        metrics = [json.loads(p.read_text()) for p in sorted(runs.rglob("metrics.json"))]
        row.zsl[cell.name] = [m["zsl"]["top1"] for m in metrics]
        for m in metrics:
            for name_, value in m.get("zsl_per_class", {}).items():
                row.recall.setdefault(cell.name, {}).setdefault(name_, []).append(value)
        row.train_clips += sum(m["samples"]["train"] * m["epochs"] for m in metrics if "train" in m.get("samples", {}))
    return row


# --- report -----------------------------------------------------------------------------------

def _cell(values: list[float] | None, digits: int = 1) -> str:
    if not values:
        return "-"
    mean, std = real_baseline.mean_std(values)
    return f"{100 * mean:.{digits}f}" + (f" ± {100 * std:.{digits}f}" if len(values) > 1 else "")


def table(cells: list[Cell], published: dict, rows: list[Row], encoder_spec: str, seeds: int) -> str:
    head = " | ".join(f"{c.name.split('_', 1)[0]} {c.name.split('_', 1)[1].replace('_', '/')}" for c in cells)
    lines = [f"### Published vs this implementation (text: {encoder_spec}; ours: mean ± std over {seeds} seeds)", "",
             f"| row | {head} | seconds | train clips/s | note |", "|---" * (len(cells) + 4) + "|"]
    for name in published["rows"]:
        vals = " | ".join(f"{published['cells'][c.name][name]:.2f}" for c in cells)
        lines.append(f"| published {name} (CLIP) | {vals} | | | |")
    chance = " | ".join(f"{100 / len(c.unseen):.1f}" for c in cells)
    lines.append(f"| chance | {chance} | | | expected value |")
    for r in rows:
        vals = " | ".join(_cell(r.zsl.get(c.name)) for c in cells)
        rate = f"{r.train_clips / r.seconds:.0f}" if r.seconds > 0 and r.train_clips else ""
        lines.append(f"| {r.name} | {vals} | {r.seconds:.0f} | {rate} | {r.note} |")
    return "\n".join(lines)


def change_tables(cells: list[Cell], rows: list[Row]) -> list[str]:
    """One table per change group: the defaults row, then each row of the group with its difference."""
    base = next((r for r in rows if r.name == DEFAULTS), None)
    out = []
    for group in dict.fromkeys(r.group for r in rows if r.group):
        lines = [f"#### Change: {group}", "", "| row | " + " | ".join(c.name for c in cells) + " | mean |",
                 "|---" * (len(cells) + 2) + "|"]
        for r in [base, *[r for r in rows if r.group == group]]:
            if r is None:
                continue
            means = [real_baseline.mean_std(r.zsl.get(c.name, []))[0] for c in cells]
            diff = ([100 * (m - real_baseline.mean_std(base.zsl.get(c.name, []))[0]) for m, c in zip(means, cells)]
                    if base is not None and r is not base else None)
            vals = [_cell(r.zsl.get(c.name)) + (f" ({d:+.1f})" if diff and not math.isnan(d) else "")
                    for c, d in zip(cells, diff or [math.nan] * len(cells))]
            # a mean over fewer cells than the defaults' is not comparable: shown only when every cell ran
            avg = f"{np.mean(means) * 100:.1f}" if means and not any(math.isnan(m) for m in means) else "-"
            lines.append(f"| {r.name} | " + " | ".join(vals) + f" | {avg} |")
        out.append("\n".join(lines))
    return out


def closest_pairs(prototypes: np.ndarray, names: list[str], k: int = 3) -> list[tuple[float, str, str]]:
    """The k most similar pairs of classes by the cosine of their prototypes, most similar first."""
    unit = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    cos = unit @ unit.T
    pairs = [(float(cos[i, j]), names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    return sorted(pairs, key=lambda p: -p[0])[:k]


def holds_table(cells: list[Cell], rows: list[Row], encoder_spec: str, cache_dir: Path) -> str:
    """What holds each cell, measured in this run: the defaults' recall of each unseen class (mean over
    seeds; a cell whose predictions collapse onto one or two classes shows them near 100 and the rest
    near 0) and the unseen classes whose description prototypes the text encoder puts closest."""
    base = next((r for r in rows if r.name == DEFAULTS and r.recall), None)
    if base is None:
        return ""
    lines = [f"#### What holds each cell ({DEFAULTS}; text: {encoder_spec})", "",
             "| cell | recall of each unseen class, % (mean over seeds) | closest unseen prototypes (cosine) |",
             "|---|---|---|"]
    for cell in cells:
        recall = base.recall.get(cell.name, {})
        shown = ", ".join(f"{n} {100 * float(np.mean(v)):.0f}" for n, v in sorted(recall.items(), key=lambda kv: -np.mean(kv[1])))
        unseen = [cell.classes[i] for i in cell.unseen]
        texts = class_text_matrices(cell, encoder_spec, cache_dir)["description"][cell.unseen]
        close = "; ".join(f"{a} / {b} {c:.2f}" for c, a, b in closest_pairs(texts, unseen))
        lines.append(f"| {cell.name} | {shown or '-'} | {close} |")
    return "\n".join(lines)


def protocol_line(cells: list[Cell], args) -> str:
    sides = "; ".join(f"{c.name}: {c.train_key} -> {c.test_key}" for c in cells)
    return (f"Protocol: PURLS's published class splits (the registry's split files); seen classes' clips of the "
            f"training side train, unseen classes' clips of the test side test ({sides}); ZSL top-1 on the unseen "
            f"classes, mean ± sample std over seeds 0..{args.seeds - 1}, in %. Product rows: `posebridge train --split "
            f"CELL --pyskl FILE --cues none --seeds {args.seeds} --gzsl-calibration none`{' ' + args.train_args if args.train_args else ''}"
            f"{f' --epochs {args.epochs}' if args.epochs else ''} + the row's flags. Baselines: "
            f"{real_baseline.GLOBAL.describe()}. Train clips/s = seen-class training clips x epochs x seeds over "
            f"the row's wall-clock seconds (import, text encoding and evaluation included).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="Folder with nwucla/ and utdmhad/ (default ../shared/real).")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench-published", help="Work folder.")
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"Seeds per cell (default {SEEDS}).")
    parser.add_argument("--epochs", type=int, default=None, help="Head epochs of every product row (default: the row's own).")
    parser.add_argument("--cells", default="", help="Only cells whose name contains one of these comma-separated words.")
    parser.add_argument("--rows", default="", help="Only product rows whose name contains one of these words "
                                                   "(the published rows, chance and the baselines are always shown).")
    parser.add_argument("--changes", action="store_true", help="Add the one-change-per-row product rows (per-change tables).")
    parser.add_argument("--presets", action="store_true", help="Add --preset purls / dynapurls (about 12 min per "
                                                                "preset and seed for the five cells on 2 cores; "
                                                                "docs/published-benchmark.md).")
    parser.add_argument("--no-defaults", action="store_true", help="Leave out the product-defaults row.")
    parser.add_argument("--text-encoder", action="append", default=None,
                        help="minilm (default) and/or clip:DIR (a local CLIP copy); repeat for both.")
    parser.add_argument("--train-args", default="", help="Extra flags for every product row.")
    parser.add_argument("--quick", action="store_true", help="Smoke check: 1 seed, 2 epochs.")
    parser.add_argument("--out", type=Path, default=None, help="Results file (default <work>/results.md).")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = QUICK["seeds"], QUICK["epochs"]
    data = bench_real.data_dir(args.data, "nwucla/ and utdmhad/")
    if data is None:
        return 1
    published = json.loads(PUBLISHED.read_text())
    wanted_cells = [w.strip() for w in args.cells.split(",") if w.strip()]
    wanted_rows = [w.strip().lower() for w in args.rows.split(",") if w.strip()]
    product = ([] if args.no_defaults else [(DEFAULTS, "", [])])
    product += [(n, g, f) for n, g, f in CHANGES if args.changes]
    product += [(n, "", f) for n, f in PRESETS if args.presets]
    product = [p for p in product if not wanted_rows or any(w in p[0].lower() for w in wanted_rows)]

    start = time.perf_counter()
    pickles = import_sets(data, args.work, {c.split("_")[0] for c in published["cells"]})
    cells = cells_of(published, pickles, wanted_cells)
    sections = []
    for spec in args.text_encoder or ["minilm"]:
        rows = baseline_rows(cells, spec, args.work / "cache", args.seeds)
        for name, group, flags in product:
            print(f"{spec}: {name} ...", flush=True)
            rows.append(product_row(cells, name, flags, args, spec, group))
            print(f"  {' | '.join(f'{c.name} {_cell(rows[-1].zsl.get(c.name))}' for c in cells)} "
                  f"({rows[-1].seconds:.0f} s) {rows[-1].note}", flush=True)
        tables = [table(cells, published, rows, spec, args.seeds), *change_tables(cells, rows)]
        holds = holds_table(cells, rows, spec, args.work / "cache")
        tables += [holds] if holds else []
        sections += tables
        print("\n" + "\n\n".join(tables) + "\n", flush=True)
    total = time.perf_counter() - start
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    text = "\n\n".join([f"# Published-benchmark bench, {stamp}, commit {commit or '?'}, {platform.machine()}, "
                        f"{os.cpu_count()} CPUs{' (--quick)' if args.quick else ''}",
                        protocol_line(cells, args), f"Published rows: {published['source']}", *sections,
                        f"Total: {total:.0f} s"]) + "\n"
    out = args.out or args.work / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{protocol_line(cells, args)}\nTotal: {total:.0f} s; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
