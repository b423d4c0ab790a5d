"""Stress: three `posebridge extract` writers on the same videos and cache, and beside them a loop
of `posebridge cache info` and `posebridge cache compact` walking the store they write.

Every command must exit 0 with no traceback, and the store must end as a single run's (every clip
once, the same arrays). Real processes, real clips (the cluster tests' 12-frame demo clips).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.stages.extract.test_cluster import (  # noqa: F401  (fixtures)
    FRAMES, N_CLIPS, POSEBRIDGE, _assert_single_run_store, _env, _extracted, _start, reference, videos,
)

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([POSEBRIDGE, *args], capture_output=True, text=True, env=_env(), timeout=120)


# Between the CLI calls (each spends most of its time starting up), a tight in-process loop walks the
# store as `cache info` and `cache compact` do, so walks overlap the writers' renames many times.
_TIGHT_LOOP = textwrap.dedent("""
    import sys, pathlib
    from posebridge.cache.compact import compact
    from posebridge.cache.store import CueStore
    store, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    n = 0
    while not stop.exists():
        CueStore.open(store).info()
        compact(store)
        n += 1
    print(n)
""")


def test_three_writers_beside_an_info_and_compact_loop(videos, models_dir, reference, tmp_path):
    stop = tmp_path / "stop"
    writers = [_start(videos, tmp_path, models_dir, "--workers", "1", "--shard-clips", "1") for _ in range(3)]
    tight = None
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("clus/*/store.zarr/zarr.json")):  # the loop needs a store to look at
            assert time.monotonic() < deadline and any(w.poll() is None for w in writers), "no store appeared"
            time.sleep(0.02)
        store = next(tmp_path.glob("clus/*/store.zarr")).parent
        tight = subprocess.Popen([sys.executable, "-c", _TIGHT_LOOP, str(store), str(stop)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env())
        walkers = []
        while any(w.poll() is None for w in writers) or len(walkers) < 4:
            walkers.append(_run("cache", "info", "clus", "--cache-dir", str(tmp_path)))
            walkers.append(_run("cache", "compact", "clus", "--cache-dir", str(tmp_path)))
            assert time.monotonic() < deadline, "writers did not finish"
        outs = [w.communicate(timeout=120) for w in writers]
        stop.touch()
        loops, tight_err = tight.communicate(timeout=120)
    finally:  # a failed assertion must not leave the loop or a writer running
        stop.touch()
        for proc in [*writers, *([tight] if tight else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert tight.returncode == 0, tight_err[-3000:]
    walkers.append(_run("cache", "info", "clus", "--cache-dir", str(tmp_path), "--videos", str(videos)))
    print(f"{len(walkers)} CLI info/compact runs and {loops.strip()} in-process info+compact rounds beside 3 writers")
    for writer, (out, err) in zip(writers, outs):
        assert writer.returncode == 0 and "Traceback" not in err, err[-3000:]
    for done in walkers:
        assert done.returncode == 0 and "Traceback" not in done.stderr, (done.args, done.stdout, done.stderr[-3000:])
    assert "coverage: 4 of 4 clips" in walkers[-1].stdout, walkers[-1].stdout
    counts = [_extracted(out)[0] for out, _ in outs]
    print("extracted per writer:", counts)
    assert sum(counts) >= N_CLIPS  # a clip raced twice is kept once (compact removed the copy)
    _run("cache", "compact", "clus", "--cache-dir", str(tmp_path))
    _assert_single_run_store(tmp_path, reference)
