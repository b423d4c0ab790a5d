"""Stage-2 benchmark (a script, not a test), on the SYNTHETIC demo split.

  loader      clips/s from the zarr cache into training tensors: load_store (one read per part)
              against a naive loop of read_clip calls (the baseline)
  step time   one optimisation step on a batch already in memory, against the same step with
              its batch drawn from the dataset tensors (indexing + augmentation): the difference
              is the loader's overhead (target <= 20%)
  end to end  `posebridge train --split synthetic_zsl` (text bank, training, pseudo-unseen
              calibration model, evaluation, report) in seconds (target < 60 s on 2 CPU cores)

Run it with `make bench-train`.

With `--features-scale ntu60` it measures the features route (`train --features DIR`) at NTU-60
size (bench/scale_features.py writes a 56,880-row SYNTHETIC SynSE/PURLS folder once, 4.4 GB):
  load        load_feature_folder (memory-mapped, normalised in chunks into float16) against the
              baseline of reading the files as DynaPURLS does (np.load whole, float32, then L2
              normalise), each in a fresh process: seconds and peak RSS
  training    ms per step on that folder (batch 64) and its peak RSS

With `--scale ntu60` it measures the training view at NTU-60 size instead (bench/scale_store.py
generates a 56,880-clip SYNTHETIC store once, kept under outputs/bench/cache/):
  view reuse  the first load (the view is written from the store) against the second (it is
              opened), each in a fresh process
  peak RSS    of a fresh process that opens the view and trains on it: --steps random batches
              drawn from the whole training side, then embeds --eval-rows test clips (target <= 4 GB)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posebridge.cache.store import CueStore, dir_bytes
from posebridge.stages.splits.registry import get_split
from posebridge.stages.train.config import TrainConfig
from posebridge.cache.schema import skeleton
from posebridge.stages.train.data import load_store, normalise_persons, partition, resample
from posebridge.stages.train import loop
from posebridge.stages.train.losses import LossWeights, posebridge_loss
from posebridge.pipeline.run import train_splits
from posebridge.stages.extract.synthetic import write_synthetic_store
from posebridge.stages.train.text import class_texts
from posebridge.stages.train.text_bank import build_text_bank
from posebridge.stages.train.text_encoders import make_text_encoder
from posebridge.stages.train.view import VIEWS, load_view
from posebridge.stages.eval.embedding import embed

sys.path.insert(0, str(Path(__file__).parent))
from scale_store import SCALES, write_scale_store  # noqa: E402  (a bench script next to this one)


def naive_load(store: CueStore, num_frames: int) -> int:
    """Baseline: one read_clip per clip, then the same resampling as load_store."""
    layout = skeleton(store.layout.skeleton)
    n = 0
    for record in store.clips():
        arrays = store.read_clip(record.clip_id)
        kp = arrays.keypoints.swapaxes(0, 1)  # [M, T, V, 5]
        xyz = kp[..., :3] * np.array([record.width, record.height, record.width], np.float32)
        resample(normalise_persons(xyz, kp[..., 3], layout).swapaxes(0, 1), num_frames)
        resample(arrays.features, num_frames)
        n += 1
    return n


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def step_times(cfg: TrainConfig, dataset, split, bank, steps: int) -> tuple[float, float]:
    """Seconds per step without and with drawing the batch from the dataset tensors."""
    torch.set_num_threads(loop.CPU_THREADS)
    device = torch.device("cpu")
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    data = loop.to_device(dataset, cfg.cues, device)
    texts = loop.class_text_tensors(bank, device)
    state = loop.new_fit_state(cfg, loop.model_args(cfg, dataset, bank), device, cfg.seed)
    seen = np.array(split.seen)
    column = np.full(len(split.class_names), -1)
    column[seen] = np.arange(len(seen))
    train_idx = torch.as_tensor(parts["train"])
    class_rows = texts.rows(seen)
    weights = LossWeights.from_config(cfg)
    fixed_idx = train_idx[: cfg.batch_size]
    fixed = loop.take_batch(data, fixed_idx, cfg, state.generator)
    fixed_targets = torch.as_tensor(column[data.labels[fixed_idx.numpy()]])

    def step(batch, targets):
        visual = state.model(*batch)
        protos = state.model.prototypes(class_rows.name, class_rows.description)
        loss, _ = posebridge_loss(visual, protos, class_rows, targets, state.model.scale(), weights)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()

    def run(draw: bool) -> float:
        for _ in range(3):  # warm-up
            step(fixed, fixed_targets)
        start = time.perf_counter()
        for _ in range(steps):
            if draw:
                idx = train_idx[torch.randint(len(train_idx), (cfg.batch_size,), generator=state.generator)]
                step(loop.take_batch(data, idx, cfg, state.generator), torch.as_tensor(column[data.labels[idx.numpy()]]))
            else:
                step(fixed, fixed_targets)
        return (time.perf_counter() - start) / steps

    return run(False), run(True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


def scale_phase(phase: str, store: Path, steps: int, eval_rows: int) -> dict:
    """One measured phase in this (fresh) process: "load" writes or opens the view; "train" also trains."""
    cfg = TrainConfig(split="ntu60_55_5", epochs=1)
    dataset, load_s = timed(load_view, store, cfg.num_frames)
    out = {"load_s": load_s, "clips": len(dataset)}
    if phase == "train":
        torch.set_num_threads(loop.CPU_THREADS)
        split, device = get_split(cfg.split), torch.device("cpu")
        parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
        bank = build_text_bank(class_texts(split), make_text_encoder(cfg.text_encoder), store.parent.parent.parent)
        data, texts = loop.to_device(dataset, cfg.cues, device), loop.class_text_tensors(bank, device)
        state = loop.new_fit_state(cfg, loop.model_args(cfg, dataset, bank), device, cfg.seed)
        rows = np.random.default_rng(0).choice(parts["train"], min(len(parts["train"]), steps * cfg.batch_size),
                                               replace=False)  # random rows from the whole training side
        _, fit_s = timed(loop.fit, state, cfg, data, rows, np.array(split.seen), texts, 1)
        test = parts["test_gzsl"][:eval_rows]
        _, embed_s = timed(embed, state.model, data, test)
        out.update(step_ms=1e3 * fit_s / -(-len(rows) // cfg.batch_size), embed_clips_per_s=len(test) / embed_s,
                   train_rows=len(rows), test_rows=len(test))
    out["peak_rss_gb"] = peak_rss_gb()
    return out


def features_phase(phase: str, folder: Path, steps: int, eval_rows: int) -> dict:
    """One measured phase in this (fresh) process: the baseline read, or ours plus training."""
    from posebridge.stages.train.feature_folder import SIDES, load_feature_folder
    from posebridge.pipeline.run import for_features

    if phase == "features-baseline":  # DynaPURLS data/ntu_60.py: np.load, float32 tensors, normalise
        start = time.perf_counter()
        kept = []
        for side in SIDES:
            x = torch.from_numpy(np.load(folder / f"{side}_feature.npy"))
            kept.append((torch.nn.functional.normalize(x, dim=1), np.load(folder / f"{side}_labels.npy")))
            del x
        return {"load_s": time.perf_counter() - start, "rows": sum(len(y) for _, y in kept),
                "peak_rss_gb": peak_rss_gb()}
    dataset, load_s = timed(load_feature_folder, folder, 60)
    out = {"load_s": load_s, "rows": len(dataset)}
    torch.set_num_threads(loop.CPU_THREADS)
    cfg = for_features(TrainConfig(split="ntu60_55_5", cues="none", epochs=1, gzsl_calibration="none"), dataset)
    split, device = get_split(cfg.split), torch.device("cpu")
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    bank = build_text_bank(class_texts(split), make_text_encoder(cfg.text_encoder), folder.parent / "text")
    data, texts = loop.to_device(dataset, cfg.cues, device), loop.class_text_tensors(bank, device)
    state = loop.new_fit_state(cfg, loop.model_args(cfg, dataset, bank), device, cfg.seed)
    rows = np.random.default_rng(0).choice(parts["train"], min(len(parts["train"]), steps * cfg.batch_size),
                                           replace=False)
    _, fit_s = timed(loop.fit, state, cfg, data, rows, np.array(split.seen), texts, 1)
    test = parts["test_gzsl"][:eval_rows]
    _, embed_s = timed(embed, state.model, data, test)
    out.update(step_ms=1e3 * fit_s / -(-len(rows) // cfg.batch_size), embed_clips_per_s=len(test) / embed_s,
               train_rows=len(rows), test_rows=len(test), peak_rss_gb=peak_rss_gb())
    return out


def features_main(args) -> None:
    from scale_features import write_scale_features

    folder, gen_s = timed(write_scale_features, Path(args.scale_root).parent / "features", args.features_scale)
    size = sum(p.stat().st_size for p in folder.glob("*.npy"))
    print(f"feature folder: {size / 1e9:.1f} GB on disk, {folder} (ready in {gen_s:.0f} s)")

    def child(phase: str) -> dict:
        cmd = [sys.executable, __file__, "--phase", phase, "--store", str(folder), "--steps", str(args.steps),
               "--eval-rows", str(args.eval_rows)]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    base, ours = child("features-baseline"), child("features")
    print(f"baseline read (np.load, float32, normalise): {base['rows']} rows in {base['load_s']:.1f} s, "
          f"peak RSS {base['peak_rss_gb']:.1f} GB")
    print(f"load_feature_folder: {ours['rows']} rows in {ours['load_s']:.1f} s; training {ours['train_rows']} random "
          f"rows at {ours['step_ms']:.0f} ms/step (batch 64); embedding {ours['test_rows']} test rows at "
          f"{ours['embed_clips_per_s']:.0f} rows/s; peak RSS {ours['peak_rss_gb']:.1f} GB")
    print(f"features route load: {base['load_s'] / ours['load_s']:.2f}x the baseline's speed; "
          f"peak RSS {base['peak_rss_gb'] / ours['peak_rss_gb']:.2f}x lower (baseline load only, ours incl. training)")


def scale_main(args) -> None:
    root = Path(args.scale_root)
    store_path = write_scale_store(root, args.scale)
    store = CueStore.open(store_path)
    print(f"store: {len(store.clips())} clips, {dir_bytes(store_path / 'store.zarr') / 1e9:.1f} GB on disk, {store_path}")
    shutil.rmtree(store_path / VIEWS, ignore_errors=True)  # so the first load is a first load

    def child(phase: str) -> dict:
        cmd = [sys.executable, __file__, "--phase", phase, "--store", str(store_path), "--steps", str(args.steps),
               "--eval-rows", str(args.eval_rows)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = child("load")
    views = [p for p in (store_path / VIEWS).iterdir() if p.is_dir() and not p.name.startswith(".")]
    print(f"view written: {dir_bytes(views[0]) / 1e9:.1f} GB on disk, {views[0]}; "
          f"peak RSS while writing it {first['peak_rss_gb']:.1f} GB")
    second = child("train")
    print(f"training: {second['train_rows']} random rows, {second['step_ms']:.0f} ms/step (batch 64, cues all); "
          f"embedding {second['test_rows']} test clips at {second['embed_clips_per_s']:.0f} clips/s")
    print(f"view reuse: first load {first['load_s']:.1f} s (written), second load {second['load_s']:.2f} s "
          f"(opened): {first['load_s'] / second['load_s']:.2f}x   [target >= 10x]")
    print(f"peak RSS while training: {second['peak_rss_gb']:.1f} GB   [target <= 4 GB]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--scale", choices=sorted(SCALES), help="measure the training view at this size instead")
    parser.add_argument("--scale-root", default="outputs/bench/cache", help="where the scale store is kept")
    parser.add_argument("--eval-rows", type=int, default=4096, help="--scale: test clips embedded after training")
    parser.add_argument("--features-scale", choices=sorted(SCALES),
                        help="measure the features route (train --features) at this size instead")
    parser.add_argument("--phase", choices=("load", "train", "features-baseline", "features"),
                        help=argparse.SUPPRESS)  # a measured child process
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        measure = features_phase if args.phase.startswith("features") else scale_phase
        print(json.dumps(measure(args.phase, Path(args.store), args.steps, args.eval_rows)))
        return
    if args.features_scale:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
        features_main(args)
        return
    if args.scale:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
        scale_main(args)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        store_path, gen_s = timed(write_synthetic_store, cache)
        store = CueStore.open(store_path)
        n = len(store.clips())
        print(f"synthetic store: {n} clips written in {gen_s:.1f} s")
        cfg = TrainConfig(split="synthetic_zsl")
        load_store(store, cfg.num_frames)  # warm the page cache, so neither loader pays for the disk
        _, naive_s = timed(naive_load, store, cfg.num_frames)
        dataset, load_s = timed(load_store, store, cfg.num_frames)
        split = get_split("synthetic_zsl")
        bank = build_text_bank(class_texts(split), make_text_encoder(cfg.text_encoder), cache)
        bare, drawn = step_times(cfg, dataset, split, bank, args.steps)
        results, e2e_s = timed(lambda: train_splits(["synthetic_zsl"], base=dataclasses.replace(cfg, epochs=args.epochs),
                                                     cache_dir=cache, runs_dir=Path(tmp) / "runs"))
    overhead = (drawn - bare) / drawn
    print("\n| measure | value |\n|---|---|")
    print(f"| loader, load_store (zarr -> tensors) | {n / load_s:.0f} clips/s |")
    print(f"| loader baseline, read_clip per clip | {n / naive_s:.0f} clips/s |")
    print(f"| step, batch in memory (batch {cfg.batch_size}) | {bare * 1e3:.1f} ms |")
    print(f"| step, batch drawn from the dataset | {drawn * 1e3:.1f} ms |")
    print(f"| train + calibrate + evaluate synthetic_zsl ({args.epochs} epochs) | {e2e_s:.1f} s |")
    print()
    print(f"{naive_s / load_s:6.2f}x loader: load_store vs read_clip per clip")
    print(f"{overhead:6.1%}  loader overhead in a training step   [target <= 20%]")
    print(f"{e2e_s / 60:6.2f}x demo split end to end vs the 60 s budget   [target < 1.00x]")
    print(results[0].table)


if __name__ == "__main__":
    main()
