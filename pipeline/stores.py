"""Data set name -> cue store: the one place that finds the store a name (or a split) means.

A store lives at <cache root>/<dataset>/<fingerprint>/ (one per extractor setting). `posebridge
cache info NAME` and `export NAME` take a store path or a data set name; a split trains on the one
store of the data sets that serve it (Split.store_datasets: a Kinetics-200 split reads a
Kinetics-400 store too).
"""
from __future__ import annotations

from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.cache.store import STORE_NAME, list_stores
from posebridge.stages import paths
from posebridge.stages.splits.spec import Split


def stores_of(datasets: tuple[str, ...], cache_dir: Path | None = None) -> list[Path]:
    """Every store under the cache root of any of these data set names."""
    root = paths.cache_root(cache_dir)
    return [p for name in dict.fromkeys(datasets) for p in list_stores(root, name)]


def _the_one(found: list[Path], what: str, choose: str) -> Path:
    if len(found) > 1:
        raise UserError(f"{what} has {len(found)} caches from different extractor settings: "
                        f"{', '.join(str(p) for p in found)}; {choose}")
    return found[0]


def find_store(split: Split, cache_dir: Path | None = None, store: Path | None = None) -> Path:
    """The cue cache a split trains on: --store, else the only store of the data sets that serve it."""
    if store is not None:
        return Path(store)
    found = stores_of(split.store_datasets, cache_dir)
    if not found:
        root = paths.cache_root(cache_dir)
        where = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
        make = (f"make it first: {split.get_data}{where}" if split.get_data else
                f"extract it first: posebridge extract --videos /path/to/videos --dataset {split.dataset}{where}")
        raise UserError(f"no cue cache for dataset '{split.dataset}' under {root}; {make} (or pass --store, or train "
                        f"skeleton-only: --pyskl FILE --cues none)")
    return _the_one(found, f"dataset '{split.dataset}'", "choose one with --store")


def resolve_store(store: str, cache_dir: Path | None = None) -> Path:
    """A store path, or a data set name whose single store under the cache root is meant."""
    if (Path(store) / STORE_NAME).exists():  # a store folder (a dataset name may also be a folder here)
        return Path(store)
    found = stores_of((store,), cache_dir) if "/" not in store else []
    if not found and (Path(store).exists() or "/" in store):
        return Path(store)  # a path: opening it says what is wrong with it, naming it
    if not found:
        raise UserError(f"no cache store at '{store}' and no dataset of that name under "
                        f"{paths.cache_root(cache_dir)}; run `posebridge extract --dataset {store} ...` first")
    return _the_one(found, f"dataset '{store}'", "pass one path")
