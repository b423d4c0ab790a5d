"""Walks over folders other processes write: entries vanishing or appearing between listing and
looking are skipped or counted, never an error. Deterministic: the "other process" is a hook run
between the listing and the look (monkeypatched os calls), not timing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache import walk
from posebridge.cache.store import TMP_PREFIX, CueStore, dir_bytes, list_stores

from tests.cache.test_store import make_clip, make_record, new_store, write


def _tree(root: Path) -> Path:
    (root / "a" / "deep").mkdir(parents=True)
    (root / "a" / "deep" / "f1").write_bytes(b"x" * 100)
    (root / "a" / "f2").write_bytes(b"x" * 10)
    (root / "b").mkdir()
    (root / "b" / "f3").write_bytes(b"x" * 1000)
    (root / "top").write_bytes(b"x" * 1)
    return root


def _after_listing(monkeypatch, folder: Path, action, nth: int = 1) -> None:
    """Run `action` once, right after the nth os.scandir(folder) has listed its entries."""
    real = os.scandir
    seen, done = [], []

    class Listed:
        def __init__(self, path):
            self.entries = list(real(path))

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *exc):
            return False

    def scandir(path="."):
        if isinstance(path, int):  # shutil.rmtree lists by file descriptor
            return real(path)
        if Path(path) == folder and not done and len(seen) + 1 < nth:
            seen.append(True)
        elif Path(path) == folder and not done:
            listed = Listed(path)
            done.append(True)
            action()
            return listed
        return real(path)

    monkeypatch.setattr(walk.os, "scandir", scandir)


def test_a_folder_removed_between_listing_and_walking_is_skipped(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    _after_listing(monkeypatch, root, lambda: shutil.rmtree(root / "a"))
    assert dir_bytes(root) == 1000 + 1


def test_a_folder_renamed_away_and_replaced_by_a_file_is_skipped(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")

    def swap():
        os.rename(root / "b", tmp_path / "gone")
        (root / "b").write_bytes(b"y" * 7)  # same name, now a file: scandir says NotADirectoryError

    _after_listing(monkeypatch, root, swap)
    assert dir_bytes(root) == 110 + 1


def test_a_file_removed_between_listing_and_stat_is_skipped(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    _after_listing(monkeypatch, root / "b", lambda: (root / "b" / "f3").unlink())
    assert dir_bytes(root) == 111


def test_a_file_that_grows_after_listing_is_counted_at_its_new_size(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    _after_listing(monkeypatch, root / "b", lambda: (root / "b" / "f3").write_bytes(b"x" * 5000))
    assert dir_bytes(root) == 111 + 5000


def test_the_walked_folder_itself_gone(tmp_path):
    assert dir_bytes(tmp_path / "nothing") == 0
    assert walk.subdirs(tmp_path / "nothing") == [] and walk.list_entries(tmp_path / "nothing") == []
    (tmp_path / "file").write_text("x")
    assert dir_bytes(tmp_path / "file") == 0 and walk.subdirs(tmp_path / "file") == []
    assert walk.file_size(tmp_path / "nothing") == 0 and walk.mtime(tmp_path / "nothing") is None


def test_subdirs_skips_vanished_entries_and_filters_names(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    (root / ".tmp-x").mkdir()
    assert [p.name for p in walk.subdirs(root)] == [".tmp-x", "a", "b"]
    assert [p.name for p in walk.subdirs(root, hidden=False)] == ["a", "b"]
    assert [p.name for p in walk.subdirs(root, ".tmp-")] == [".tmp-x"]
    _after_listing(monkeypatch, root, lambda: shutil.rmtree(root / "a"))
    # A listing is a snapshot: "a" may be named though gone by now; callers look it up tolerantly.
    assert [p.name for p in walk.subdirs(root, hidden=False)][-1:] == ["b"]


def _store_with_two_parts(tmp_path: Path) -> CueStore:
    store = new_store(tmp_path / "demo" / ("a" * 16))
    rng = np.random.default_rng(0)
    write(store, [(make_record(i), make_clip(rng, 8)) for i in range(4)], shard_clips=2)
    return CueStore.open(store.path)


@pytest.mark.parametrize("nth", range(1, 9))
def test_info_survives_a_part_landing_mid_walk(nth, tmp_path, monkeypatch):
    """The failure seen on a cluster: another writer renamed its `.tmp-*` part into place while
    `info()` walked parts/ (rglob listed the tmp name, then found it gone). Whichever of info's
    listings of parts/ the rename follows, info answers."""
    store = _store_with_two_parts(tmp_path)
    tmp = store.parts_dir / f"{TMP_PREFIX}otherhost-1-abc"
    shutil.copytree(store.parts_dir / store.part_names()[0], tmp)
    _after_listing(monkeypatch, store.parts_dir, lambda: os.rename(tmp, store.parts_dir / "w009-landed"), nth)
    info = CueStore.open(store.path).info()
    assert info["n_clips"] == 4 and info["bytes_live"] >= 0


def test_the_cluster_failure_itself_dir_bytes_over_a_tmp_part_renamed_in(tmp_path, monkeypatch):
    store = _store_with_two_parts(tmp_path)
    before = dir_bytes(store.path / "store.zarr")
    tmp = store.parts_dir / f"{TMP_PREFIX}otherhost-1-abc"
    shutil.copytree(store.parts_dir / store.part_names()[0], tmp)
    _after_listing(monkeypatch, store.parts_dir, lambda: os.rename(tmp, store.parts_dir / "w009-landed"))
    assert dir_bytes(store.path / "store.zarr") == before  # listed as tmp, gone when walked: skipped



def test_info_survives_a_part_compacted_away_mid_walk(tmp_path, monkeypatch):
    store = _store_with_two_parts(tmp_path)
    part = store.parts_dir / store.part_names()[0]
    _after_listing(monkeypatch, part, lambda: shutil.rmtree(part))
    info = store.info()
    assert info["n_parts"] == 1 and info["bytes_on_disk"] > 0


def test_list_stores_ignores_a_store_folder_removed_meanwhile(tmp_path, monkeypatch):
    store = _store_with_two_parts(tmp_path / "cache")
    (tmp_path / "cache" / "demo" / "other").mkdir()
    _after_listing(monkeypatch, tmp_path / "cache" / "demo",
                   lambda: shutil.rmtree(tmp_path / "cache" / "demo" / "other"))
    assert list_stores(tmp_path / "cache") == [store.path]
    assert list_stores(tmp_path / "cache", "demo") == [store.path]


def test_stale_tmp_cleaning_and_claim_listing_tolerate_vanishing_entries(tmp_path, monkeypatch):
    from posebridge.cache.claims import CLAIMS, list_claims, remove_stale_claims
    from posebridge.cache.store import clean_stale_tmp

    store = _store_with_two_parts(tmp_path)
    (store.path / CLAIMS).mkdir(exist_ok=True)
    leftover = store.path / CLAIMS / ".grave-x"
    leftover.write_text("x")
    _after_listing(monkeypatch, store.path / CLAIMS, lambda: leftover.unlink())
    assert remove_stale_claims(store.path, lease_s=0) == 0 and list_claims(store.path) == []
    foreign = store.parts_dir / f"{TMP_PREFIX}otherhost-1-abc"
    foreign.mkdir()
    _after_listing(monkeypatch, store.parts_dir, lambda: foreign.rmdir())
    clean_stale_tmp(store.parts_dir)  # stat of the vanished foreign tmp folder: skipped
    assert store.part_names() == sorted(store.part_names()) and len(store.part_names()) == 2


@pytest.mark.parametrize("fn", [walk.subdirs, walk.list_entries, walk.dir_bytes])
def test_every_helper_survives_its_folder_vanishing_after_listing(fn, tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    _after_listing(monkeypatch, root, lambda: shutil.rmtree(root))
    fn(root)  # no error


def test_a_linked_dataset_folder_is_listed_but_dir_bytes_does_not_follow_links(tmp_path):
    root = _tree(tmp_path / "t")
    (tmp_path / "cacheroot").mkdir()
    os.symlink(root, tmp_path / "cacheroot" / "linked")
    assert [p.name for p in walk.subdirs(tmp_path / "cacheroot")] == ["linked"]
    assert dir_bytes(tmp_path / "cacheroot") == 0


@pytest.mark.parametrize("nth", range(1, 7))
def test_compact_never_removes_a_part_that_lands_while_it_runs(nth, tmp_path, monkeypatch):
    """Found by the stress test: compact took its index from one listing of parts/ and the parts'
    tables from a later one, so a part that landed in between looked wholly superseded and was
    deleted with the only copy of its clip. Whichever listing the landing follows, the clip stays."""
    from posebridge.cache.compact import compact

    store = _store_with_two_parts(tmp_path)
    rng = np.random.default_rng(1)
    late = (make_record(7), make_clip(rng, 8))
    _after_listing(monkeypatch, store.parts_dir, lambda: write(CueStore.open(store.path), [late]), nth)
    compact(store.path)
    monkeypatch.undo()
    after = CueStore.open(store.path)
    assert late[0].clip_id in {r.clip_id for r in after.clips()}, nth
    assert len(after.clips()) == 5
