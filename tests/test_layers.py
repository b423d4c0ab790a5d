"""The import graph is a stack, at two scales.

Folders: three floors, each importing only itself and the floors below it: cache/ (the store and
what it rests on) <- stages/ (what the stages share, then extract, train, eval) <- pipeline/ (the
drivers over the stages, and the command line).

Inside the folders: every module imports only its own layer and the layers below it. Every module
under the three folders is parsed with ast; every Import / ImportFrom node counts, the lazy ones
inside functions too (a function-level import is still a dependency, it only runs later). Each
module maps to an area (the longest matching prefix in LAYERS) and each area to a layer. README.md
("Layers") has the same table in prose.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top; installed as posebridge.<floor>.
FLOORS: list[tuple[str, str]] = [
    ("cache", "the zarr cue store and what it rests on: errors, atomic writes, fingerprints, skeleton layouts"),
    ("stages", "what the stages share (paths, datasets and importers, split files), then extract, train, eval"),
    ("pipeline", "the drivers over the stages (runs, splits x seeds, ablations, predict, the demo), the CLI"),
]
TOPS = tuple(floor for floor, _ in FLOORS)

# Bottom to top: (layer, areas, why). An area is a module or a package prefix (dotted, no "posebridge.").
LAYERS: list[tuple[str, tuple[str, ...], str]] = [
    ("bottom", ("cache.errors", "cache.atomic", "cache.fingerprint", "cache.layouts"),
     "errors, atomic writes, fingerprints, skeleton layouts: used everywhere"),
    ("cache", ("cache",), "the zarr cue store: written by extract, read by train, knows nothing of either"),
    ("stage data", ("stages.paths", "stages.datasets", "stages.splits"),
     "what every stage shares: where models, caches and runs live, data sets and importers, split files"),
    ("extract", ("stages.extract",), "stage 1: pose model -> cues into the cache (its settings: stages.extract.config)"),
    ("train", ("stages.train",), "stage 2: heads trained on cached tensors; knows nothing of evaluation"),
    ("eval", ("stages.eval",), "metrics of a trained model; reaches train only through stages.train.api"),
    ("experiments", ("pipeline",), "drivers over extract + train + eval: runs, splits x seeds, "
                                   "ablations, predict, the demo"),
    ("cli", ("pipeline.cli",), "the command line, on top of everything"),
]
# (importing area, imported area) -> the one module the import must go through.
GATEWAYS = {("stages.eval", "stages.train"): "stages.train.api"}

RANK = {area: rank for rank, (_, areas, _) in enumerate(LAYERS) for area in areas}
NAME = {area: layer for layer, areas, _ in LAYERS for area in areas}
# The top packages' own __init__.py files (empty) sit at the bottom; they are no prefix for their modules.
PACKAGE_INITS = ("stages",)
RANK.update({p: 0 for p in PACKAGE_INITS})
NAME.update({p: LAYERS[0][0] for p in PACKAGE_INITS})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in TOPS for p in sorted((ROOT / top).rglob("*.py"))}


def area_of(module: str) -> str | None:
    matches = [a for a in RANK if module == a or (a not in PACKAGE_INITS and module.startswith(a + "."))]
    return max(matches, key=len) if matches else None


def imports(path: Path, module: str, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported project module) for every import in the file, lazy ones included."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from a.b import c` imports module a.b.c when that is a module, else a name of a.b
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}".removeprefix("posebridge.") in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            target = target.removeprefix("posebridge.")
            if target.split(".")[0] in TOPS and (node.lineno, target) not in found:
                found.append((node.lineno, target))
    return found


def edges() -> list[tuple[str, int, str, str]]:
    """(file, line, importing module, imported module) for every import between project modules."""
    known = project_modules()
    return [(str(path.relative_to(ROOT)), line, module, target)
            for module, path in known.items() for line, target in imports(path, module, known)]


def test_every_module_has_a_layer():
    unmapped = [m for m in project_modules() if area_of(m) is None]
    assert not unmapped, f"modules in no layer (add their area to LAYERS in {__file__}): {unmapped}"


def floor_of(module: str) -> str:
    return module.split(".")[0]


def test_the_floors_and_the_layers_agree():
    """Each layer lies inside one floor, and the layers' order keeps the floors' order."""
    floors = [floor_of(areas[0]) for _, areas, _ in LAYERS]
    assert all(floor_of(a) == f for (_, areas, _), f in zip(LAYERS, floors) for a in areas)
    assert [TOPS.index(f) for f in floors] == sorted(TOPS.index(f) for f in floors)


def test_folders_import_only_their_own_floor_and_those_below():
    upward = [f"{file}:{line}: {module} (floor {floor_of(module)}) imports {target} (floor {floor_of(target)})"
              for file, line, module, target in edges()
              if TOPS.index(floor_of(target)) > TOPS.index(floor_of(module))]
    assert not upward, "imports from a folder above:\n" + "\n".join(upward)


def test_imports_only_go_down():
    upward = []
    for file, line, module, target in edges():
        src, dst = area_of(module), area_of(target)
        if src is None or dst is None:
            continue
        if RANK[dst] > RANK[src]:
            upward.append(f"{file}:{line}: {module} (layer {NAME[src]}) imports {target} (layer {NAME[dst]})")
        gateway = GATEWAYS.get((src, dst))
        if gateway and target != gateway:
            upward.append(f"{file}:{line}: {module} (layer {NAME[src]}) imports {target} (layer {NAME[dst]}) "
                          f"other than through {gateway}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_two_areas_import_each_other():
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for file, line, module, target in edges():
        src, dst = area_of(module), area_of(target)
        if src and dst and src != dst:
            graph.setdefault(src, set()).add(dst)
            where.setdefault((src, dst), f"{file}:{line}")

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in reach(a) if a != b and a in reach(b)})
    details = [f"{a} <-> {b} (e.g. {where.get((a, b), 'via other areas')}, {where.get((b, a), 'via other areas')})"
               for a, b in cycles]
    assert not cycles, "areas that import each other:\n" + "\n".join(details)


def test_no_imports_by_name_strings():
    """A module loaded from a string (importlib.import_module, __import__) is an edge this test cannot see."""
    hits = []
    for module, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("import_module", "__import__", "spec_from_file_location"):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not hits, "modules loaded by name:\n" + "\n".join(hits)


def test_the_table_catches_an_upward_import_between_floors(tmp_path):
    """An import from the cache into a stage is an upward edge at folder level."""
    known = {"cache.store": tmp_path / "store.py", "stages.train.data": tmp_path / "data.py"}
    (tmp_path / "store.py").write_text("from posebridge.stages.train.data import load_pyskl\n")
    found = imports(tmp_path / "store.py", "cache.store", known)
    assert found == [(1, "stages.train.data")]
    assert TOPS.index(floor_of("stages.train.data")) > TOPS.index(floor_of("cache.store"))


def test_the_table_catches_an_upward_import(tmp_path):
    """The checker itself: an import from train into eval is reported with file, line and both layers."""
    known = {"stages.train.loop": tmp_path / "loop.py", "stages.eval.report": tmp_path / "report.py"}
    (tmp_path / "loop.py").write_text("def f():\n    from posebridge.stages.eval.report import summarise_runs\n")
    found = imports(tmp_path / "loop.py", "stages.train.loop", known)
    assert found == [(2, "stages.eval.report")]
    assert RANK[area_of("stages.eval.report")] > RANK[area_of("stages.train.loop")]
