"""Run folders: what a run writes next to its checkpoint, and the tables researchers paste.

Each run folder holds config.json, fingerprints.json, versions.json, metrics.json, results.md,
confusion.png (unseen classes), per_class.png and embedding.png (PCA of the test embeddings with
the class text prototypes). summarise_runs() turns several run folders into
one markdown table, averaging runs that differ only in their seed.
"""
from __future__ import annotations

import json
import math
import platform
from collections import Counter
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np

from posebridge.cache.atomic import atomic_path
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import fingerprint
from posebridge.stages.eval.metrics import aggregate

TABLE_HEADER = "| split | cues | text | ZSL top-1 | top-5 | GZSL S | U | H | seeds |"
_TABLE_RULE = "|---|---|---|---|---|---|---|---|---|"
MINILM_NOTE = ("NOTE: text encoder minilm (MiniLM-L6, 384-d); the published numbers on this split use CLIP "
               "ViT-B/32 (512-d): copy it into a local folder once (docs/method-presets.md) and pass "
               "--text-encoder clip:DIR")
_COLUMNS = ("zsl.top1", "zsl.top5", "gzsl.seen", "gzsl.unseen", "gzsl.h")
_PACKAGES = ("torch", "numpy", "zarr", "transformers", "posebridge")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


TRANSDUCTIVE_NOTE = ("TRANSDUCTIVE: test-time refinement (--ttr) adapted the unseen class texts on the unlabelled "
                     "test samples; not comparable to inductive results")


def row_label(cues: str, transductive: bool) -> str:
    """The table's cues cell; a transductive run says so in every table it appears in."""
    return f"{cues}, TTR (transductive)" if transductive else cues


def _cell(stats: dict | None) -> str:
    """Percent: mean ± std over seeds, or the one value when there is one seed."""
    if not stats or stats["n"] == 0 or math.isnan(stats["mean"]):
        return "–"
    if stats["n"] == 1:
        return f"{100 * stats['mean']:.1f}"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def text_encoder_of(runs: list[dict]) -> str:
    """The text encoder of a row's runs (metrics.json has it since the method presets; "?" before)."""
    return str(runs[0].get("text_encoder", "?")) if runs else "?"


def minilm_on_published_split(runs: list[dict]) -> bool:
    """MiniLM runs of a split whose published numbers use another text encoder (the split's
    published_text_encoder, which metrics.json records)."""
    return text_encoder_of(runs) == "minilm" and any(r.get("published_text_encoder") for r in runs)


def split_notes(split: str, runs: list[dict]) -> list[str]:
    """What a table must say about a row's split: why GZSL is not available, where its class list
    comes from when upstream does not state it (Kinetics-200), and what is assumed about it."""
    notes = []
    reasons = [r["gzsl"]["reason"] for r in runs if (r.get("gzsl") or {}).get("available") is False]
    if reasons:
        notes.append(f"{split}: {reasons[0]}")
    class_list = next((r["split_class_list"] for r in runs if r.get("split_class_list")), None)
    if class_list:
        notes.append(f"{split}: class list: {class_list}")
    assumption = next((r["split_assumption"] for r in runs if r.get("split_assumption")), None)
    if assumption:
        notes.append(f"ASSUMPTION ({split}): {assumption}")
    return notes


def results_table(rows: Iterable[tuple[str, str, list[dict]]]) -> str:
    """Markdown table; each row is (split, cues, metrics of its seeds). The text encoder is a column;
    notes under the table say what each row's split needs said (split_notes), and a MiniLM row on a
    published split that the published numbers use CLIP."""
    lines, notes = [TABLE_HEADER, _TABLE_RULE], []
    for split, cues, runs in rows:
        stats = aggregate(runs)
        unavailable = any((r.get("gzsl") or {}).get("available") is False for r in runs)
        cells = " | ".join("n/a" if unavailable and key.startswith("gzsl.") else _cell(stats.get(key))
                           for key in _COLUMNS)
        notes += [note for note in split_notes(split, runs) if note not in notes]
        lines.append(f"| {split} | {cues} | {text_encoder_of(runs)} | {cells} | {len(runs)} |")
        if minilm_on_published_split(runs) and MINILM_NOTE not in notes:
            notes.append(MINILM_NOTE)
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def fit_title(fig, ax, title: str) -> None:
    """Set `title` on `ax` of a constrained-layout figure so that it lies inside the figure: on one
    line where it fits, else wrapped at word boundaries into as few lines as fit, else in smaller
    type. Centred over a narrow plot (a confusion matrix of 2 classes) beside long tick labels, a
    one-line title otherwise runs past the figure's edges and is cut off."""
    import textwrap

    base = ax.title.get_fontsize()
    longest_word = max(len(w) for w in title.split())
    for size in (base, base * 0.85, base * 0.7):
        for width in range(len(title), longest_word - 1, -1):
            text = ax.set_title("\n".join(textwrap.wrap(title, width, break_on_hyphens=False)), fontsize=size)
            fig.canvas.draw()  # lays the figure out around the title
            box = text.get_window_extent(fig.canvas.get_renderer())
            if box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0 and box.y1 <= fig.bbox.height:
                return


def confusion_figure(confusion: np.ndarray, names: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.45 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fit_title(fig, ax, "ZSL confusion (unseen classes, row-normalised)")
    return fig


def plot_confusion(path: Path, confusion: np.ndarray, names: list[str]) -> None:
    import matplotlib.pyplot as plt

    fig = confusion_figure(confusion, names)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(path: Path, accuracy: np.ndarray, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.nan_to_num(np.asarray(accuracy, dtype=float) * 100.0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(names) + 2.0), 4.0), layout="constrained")
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("top-1 accuracy (%)")
    fit_title(fig, ax, "ZSL accuracy per unseen class")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_config(run_dir: Path, config: dict) -> None:
    """The full config, written when a run starts (the log shows only a short settings line)."""
    _write_json(Path(run_dir) / "config.json", config)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x projected on their first two principal axes, and the share of variance each axis
    explains. Axis signs are fixed (largest loading positive) so the same data gives the same plot."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:2]
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    variance = singular ** 2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    coords = centred @ axes.T
    if coords.shape[1] < 2:  # fewer than two directions in the data
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained


EMBEDDING_MAX_POINTS = 2000  # test clips drawn; more only hide each other


def plot_embedding(path: Path, points: np.ndarray, labels: np.ndarray, prototypes: np.ndarray,
                   names: list[str], seen: np.ndarray) -> None:
    """PCA of the test skeleton embeddings (coloured by true class) together with the class text
    prototypes (circles: seen, stars: unseen), all L2-normalised as the scores compare them and each
    set centred on its own mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, prototypes = _unit_rows(points), _unit_rows(prototypes)
    if len(points) > EMBEDDING_MAX_POINTS:  # evenly spaced rows: deterministic, every class kept in proportion
        keep = np.linspace(0, len(points) - 1, EMBEDDING_MAX_POINTS).round().astype(int)
        points, labels = points[keep], np.asarray(labels)[keep]
    # Each set is centred on its own mean first: skeleton and text embeddings sit apart in the shared
    # space (the modality gap), which would otherwise take the first axis and squeeze each set to a dot.
    points, prototypes = points - points.mean(axis=0), prototypes - prototypes.mean(axis=0)
    coords, explained = pca_2d(np.concatenate([points, prototypes]))
    clips, protos = coords[:len(points)], coords[len(points):]
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    colours = [cmap(i % cmap.N) for i in range(len(names))]
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.scatter(clips[:, 0], clips[:, 1], s=10, alpha=0.6, c=[colours[int(k)] for k in labels], linewidths=0,
               label="test clip (colour: true class)")
    seen = np.asarray(seen, bool)
    for mask, marker, label in ((seen, "o", "seen class text"), (~seen, "*", "unseen class text")):
        if mask.any():
            ax.scatter(protos[mask, 0], protos[mask, 1], s=220 if marker == "*" else 110, marker=marker,
                       c=[colours[i] for i in np.flatnonzero(mask)], edgecolors="black", linewidths=1.0, label=label)
    if len(names) <= 40:
        for (x, y), name, is_seen in zip(protos, names, seen):
            ax.annotate(name, (x, y), fontsize=6, xytext=(4, 3), textcoords="offset points",
                        fontweight="normal" if is_seen else "bold")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title("Test skeleton embeddings and class text prototypes\n(PCA; each set centred on its mean)",
                 fontsize=10)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def write_run_report(run_dir: Path, config: dict, fingerprints: dict, metrics: dict, details: dict) -> None:
    """All run-folder files except the checkpoint. `details` has unseen_names, confusion, per_class."""
    run_dir = Path(run_dir)
    write_config(run_dir, config)
    _write_json(run_dir / "fingerprints.json", fingerprints)
    _write_json(run_dir / "versions.json", versions())
    _write_json(run_dir / "metrics.json", metrics)
    transductive = bool(metrics.get("transductive", config.get("ttr", False)))
    label = row_label(metrics.get("cues", config.get("cues", "?")), transductive)
    table = results_table([(metrics.get("split", config.get("split", "?")), label,
                             [{"text_encoder": config.get("text_encoder", "?"), **metrics}])])
    calibration = metrics.get("calibration") or {}
    notes = [f"- seed {metrics.get('seed', config.get('seed'))}, {metrics.get('epochs', '?')} epochs; "
             f"GZSL gamma {metrics.get('gzsl', {}).get('gamma', 0.0):.3f} ({calibration.get('method', 'none')})"]
    if transductive:
        notes.append(f"- {TRANSDUCTIVE_NOTE}")
    if calibration.get("note"):
        notes.append(f"- calibration: {calibration['note']}")
    (run_dir / "results.md").write_text(table + "\n" + "\n".join(notes) + "\n")
    plot_confusion(run_dir / "confusion.png", np.asarray(details["confusion"]), details["unseen_names"])
    plot_per_class(run_dir / "per_class.png", np.asarray(details["per_class"]), details["unseen_names"])
    if "embedding" in details:
        e = details["embedding"]
        plot_embedding(run_dir / "embedding.png", e["points"], e["labels"], e["prototypes"], e["names"], e["seen"])
        with open(run_dir / "results.md", "a") as f:  # the two plots side by side in a markdown viewer
            f.write("\n| ZSL confusion | embeddings (PCA) |\n|---|---|\n| ![confusion](confusion.png) "
                    "| ![embedding](embedding.png) |\n")


def _settings(run_dir: Path) -> str:
    """What a run was made with, apart from its seed and device: runs are averaged only when equal."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return Path(run_dir).parent.name
    config = json.loads(path.read_text())
    return fingerprint({k: v for k, v in config.items() if k not in ("seed", "device", "given")})


def summarise_runs(run_dirs: Iterable[Path]) -> str:
    """One markdown table over run folders; runs that differ only in their seed are averaged. Rows
    of the same split and cues made with other settings are told apart by their settings folder's
    name. Transductive rows are labelled and the table ends with a note saying what that means."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    folders: dict[tuple[str, str, str], str] = {}
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.json"
        if not path.exists():
            raise UserError(f"{path} is missing; that run did not finish (rerun it, or leave its folder out)")
        metrics = json.loads(path.read_text())
        config_path = Path(run_dir) / "config.json"
        if "text_encoder" not in metrics and config_path.exists():  # runs made before metrics named it
            metrics["text_encoder"] = json.loads(config_path.read_text()).get("text_encoder", "?")
        label = row_label(metrics["cues"], bool(metrics.get("transductive", False)))
        key = (metrics["split"], label, _settings(run_dir))
        groups.setdefault(key, []).append(metrics)
        folders.setdefault(key, Path(run_dir).parent.name)
    shared = Counter((split, label) for split, label, _ in groups)

    def row_name(key: tuple[str, str, str]) -> str:  # the settings folder, only where rows would look alike
        split, label, _ = key
        return f"{label} [{folders[key]}]" if shared[split, label] > 1 else label

    table = results_table((key[0], row_name(key), runs) for key, runs in groups.items())
    if any(m.get("transductive") for runs in groups.values() for m in runs):
        table += f"\n{TRANSDUCTIVE_NOTE}\n"
    return table
