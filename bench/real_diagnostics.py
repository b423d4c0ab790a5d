"""Why a row wins or loses on the real sets (analysis, not tuning): the bench's linear baseline with
one thing changed at a time, on the same partitions as `make bench-real`.

  input    the bench's normalisation vs the product's (load_pyskl: normalise_persons + resample to
           64 frames, what the heads see), pooled the same way
  text     class-name prompts (the row) vs the one-sentence description vs both averaged

Nothing here picks a setting for the product or the bench rows; the rows stay as fixed in advance.
Run after `make bench-real` (it reuses the converted files): .venv/bin/python bench/real_diagnostics.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import real_baseline as B  # noqa: E402
from bench_real import SETS, ROOT, default_data_dir, convert, _cell  # noqa: E402


def text_variants(real, cache_dir: Path) -> dict[str, np.ndarray]:
    from posebridge.stages.train.text import ClassTexts, prompts
    from posebridge.stages.train.text_bank import build_text_bank
    from posebridge.stages.train.text_encoders import make_text_encoder

    texts = [ClassTexts(name=c["name"], templates=prompts(c["name"]), description=c["descriptions"][0])
             for c in real.classes]
    bank = build_text_bank(texts, make_text_encoder("minilm"), cache_dir)
    name, desc = bank.name.numpy(), bank.description.numpy()
    both = name + desc
    return {"name prompts": name, "description": desc,
            "name + description": both / np.linalg.norm(both, axis=1, keepdims=True)}


def product_inputs(real) -> tuple[dict, np.ndarray]:
    """Pooled features of what the heads see: load_pyskl with the set's layout."""
    from posebridge.cache.layouts import load_layout
    from posebridge.stages.train.data import load_pyskl

    ds = load_pyskl(real.pyskl, 64, load_layout(str(real.layout)))
    feats = np.stack([B.pooled(k[0].numpy().astype(np.float64)) for k in ds.keypoints])
    return {c: i for i, c in enumerate(ds.clip_ids)}, feats


def run(real, train_x, train_y, test_x, test_y, text) -> tuple[list[float], list[float]]:
    names = [c["name"] for c in real.classes]
    res = [B.evaluate_partition(train_x, train_y, test_x, test_y, text, np.array(sorted(names.index(n) for n in p)), i)
           for i, p in enumerate(real.partitions)]
    return [r.zsl for r in res], [r.gzsl_h for r in res]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench-real")
    args = parser.parse_args()
    from posebridge.cache.pyskl import read_pyskl

    lines = []
    for real in convert(args.data or default_data_dir(), args.work, 10):
        start = time.perf_counter()
        data = read_pyskl(real.pyskl)
        layout = json.loads(real.layout.read_text())
        anns = {a["frame_dir"]: a for a in data["annotations"]}
        index, product = product_inputs(real)
        sides = {}
        for key in (real.train_key, real.test_key):
            ids = data["split"][key]
            sides[key] = (np.stack([B.clip_features(anns[c]["keypoint"], layout) for c in ids]),
                          np.stack([product[index[c]] for c in ids]), np.array([anns[c]["label"] for c in ids]))
        texts = text_variants(real, args.work / "cache")
        (tb, tp, ty), (vb, vp, vy) = sides[real.train_key], sides[real.test_key]
        lines += [f"### {real.name}", "", "| variant | ZSL top-1 | GZSL H |", "|---|---|---|"]
        for label, (tx, vx, text) in {
            "row: bench input, name prompts": (tb, vb, texts["name prompts"]),
            "product input (load_pyskl), name prompts": (tp, vp, texts["name prompts"]),
            "bench input, description": (tb, vb, texts["description"]),
            "bench input, name + description": (tb, vb, texts["name + description"]),
        }.items():
            zsl, h = run(real, tx, ty, vx, vy, text)
            lines.append(f"| {label} | {_cell(zsl)} | {_cell(h)} |")
            print(lines[-1], flush=True)
        lines += ["", f"({time.perf_counter() - start:.0f} s)", ""]
    text = "\n".join(lines)
    (args.work / "diagnostics.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
