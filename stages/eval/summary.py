"""One summary row over every partition x seed of a split file: mean ± std of ZSL top-1 and, when
the test side holds seen classes, GZSL S / U / H. Returned as numbers (for scripts such as
`make bench-real`) and as a markdown table (printed, and written next to the run folders)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from posebridge.cache.atomic import atomic_path
from posebridge.stages.eval.metrics import aggregate
from posebridge.stages.eval.report import row_label, split_notes

SUMMARY_COLUMNS = {"zsl_top1": "zsl.top1", "gzsl_seen": "gzsl.seen", "gzsl_unseen": "gzsl.unseen", "gzsl_h": "gzsl.h"}
HEADER = "| split | cues | partitions x seeds | ZSL top-1 | GZSL S | U | H |"
RULE = "|---|---|---|---|---|---|---|"


@dataclass
class Stat:
    mean: float  # fraction (0..1); nan when no run has the metric
    std: float   # sample std (ddof=1) over partitions x seeds; 0 for one run
    n: int

    def cell(self) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "–"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass
class SplitSummary:
    split: str                # the split file's name
    cues: str                 # the table's cues cell (marks transductive runs)
    partitions: int
    seeds: int
    zsl_top1: Stat
    gzsl_seen: Stat | None    # None when no test side held seen classes
    gzsl_unseen: Stat | None
    gzsl_h: Stat | None
    run_dirs: list[Path]
    path: Path | None = None  # the markdown file, once written
    notes: tuple[str, ...] = ()  # what the tables say about the split (report.split_notes): no GZSL and why, ...

    @property
    def row(self) -> str:
        no_gzsl = "n/a" if any("GZSL not available" in note for note in self.notes) else "–"
        gzsl = [s.cell() if s else no_gzsl for s in (self.gzsl_seen, self.gzsl_unseen, self.gzsl_h)]
        return (f"| {self.split} | {self.cues} | {self.partitions} x {self.seeds} | {self.zsl_top1.cell()} | "
                + " | ".join(gzsl) + " |")

    @property
    def table(self) -> str:
        return f"{HEADER}\n{RULE}\n{self.row}\n" + "".join(f"\n{note}\n" for note in self.notes)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["run_dirs"] = [str(p) for p in self.run_dirs]
        out["path"] = None if self.path is None else str(self.path)
        return out


def summarise_partitions(split: str, run_dirs: list[Path], partitions: int, seeds: int) -> SplitSummary:
    runs = [json.loads((Path(d) / "metrics.json").read_text()) for d in run_dirs]
    stats = aggregate(runs)

    def stat(key: str) -> Stat:
        s = stats.get(key, {"mean": math.nan, "std": math.nan, "n": 0})
        return Stat(float(s["mean"]), float(s["std"]), int(s["n"]))

    with_seen = any(r.get("gzsl", {}).get("samples", 0) > r.get("zsl", {}).get("samples", 0)
                    and r.get("gzsl", {}).get("available") is not False for r in runs)
    gzsl = {k: stat(v) if with_seen else None for k, v in SUMMARY_COLUMNS.items() if k != "zsl_top1"}
    transductive = any(r.get("transductive") for r in runs)
    return SplitSummary(split=split, cues=row_label(runs[0]["cues"], transductive), partitions=partitions,
                        seeds=seeds, zsl_top1=stat("zsl.top1"), run_dirs=list(run_dirs),
                        notes=tuple(split_notes(split, runs)), **gzsl)


def write_summary(summary: SplitSummary, path: Path) -> Path:
    """The table as markdown, with the run folders it averages (atomic: a reader never sees half)."""
    lines = [summary.table, "Mean ± std (percent) over every partition x seed; run folders:", ""]
    lines += [f"- {d}" for d in summary.run_dirs]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    summary.path = path
    return path
