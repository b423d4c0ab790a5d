"""Exactly-once extraction with real processes on the real demo clips (CPU):
concurrent runs, a simulated SLURM array, torchrun, kill -9 of the parent, Ctrl-C, stale claims.

Every case must end with the store a single run makes: every clip once (no superseded copy),
the same arrays, and the "extracted" counts of all processes summing to the number of clips.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.claims import ClaimBook, list_claims
from posebridge.cache.store import CueStore
from posebridge.stages.extract.config import ExtractConfig, RunSettings
from posebridge.stages.extract.run import extract

POSEBRIDGE = str(Path(sys.executable).parent / "posebridge")
FRAMES = 12  # frames per clip: enough for the mechanics, short enough for 2 shared cores
N_CLIPS = 4
SCHEDULER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_ARRAY_TASK_ID",
                  "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")


@pytest.fixture(scope="module")
def videos(tmp_path_factory, demo_videos) -> Path:
    """The demo clips in a folder named `clus`: no --dataset is given, so the store is `clus`."""
    out = tmp_path_factory.mktemp("cluster") / "clus"
    out.mkdir()
    for src in demo_videos:
        shutil.copy(src, out / src.name)
    return out


@pytest.fixture(scope="module")
def reference(videos, models_dir, tmp_path_factory) -> dict:
    summary = extract(videos, cache_dir=tmp_path_factory.mktemp("ref"), config=ExtractConfig(max_frames=FRAMES),
                      run=RunSettings(workers=1, num_threads=1), models_dir=models_dir, progress=False)
    assert summary.done == N_CLIPS and summary.store.parent.name == "clus"
    return _arrays(summary.store)


def _arrays(store_path: Path) -> dict:
    return {rec.clip_id: (rec, arr) for rec, arr in CueStore.open(store_path).iter_clips()}


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCHEDULER_VARS}
    return {**env, **extra}


def _start(videos: Path, cache: Path, models_dir: Path, *args: str, env: dict | None = None,
           frames: int | None = FRAMES) -> subprocess.Popen:
    cmd = [POSEBRIDGE, "extract", "--videos", str(videos), "--cache-dir", str(cache), "--models-dir", str(models_dir),
           "--no-progress", *(["--max-frames", str(frames)] if frames else []), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env(),
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out, err


def _extracted(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"^clips: (\d+) extracted", output, re.M)]


def _store(cache: Path) -> Path:
    (store,) = list(cache.glob("clus/*/store.zarr"))
    return store.parent


def _assert_single_run_store(cache: Path, reference: dict) -> None:
    path = _store(cache)
    info = CueStore.open(path).info()
    assert (info["n_clips"], info["n_superseded_copies"]) == (N_CLIPS, 0), info
    assert list_claims(path) == []  # every claim released
    got = _arrays(path)
    assert sorted(got) == sorted(reference)
    for clip_id, (rec, arr) in reference.items():
        assert got[clip_id][0].content_id == rec.content_id
        for name, value in vars(arr).items():
            np.testing.assert_array_equal(getattr(got[clip_id][1], name), value, err_msg=f"{clip_id} {name}")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _workers(pid: int) -> list[int]:
    """Extraction workers (spawned processes), not multiprocessing's resource tracker."""
    return [c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] not in "ZX"


def _parts(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("clus/*/store.zarr/parts/*") if p.is_dir() and not p.name.startswith("."))


def test_two_concurrent_runs_split_the_clips(videos, models_dir, reference, tmp_path):
    procs = [_start(videos, tmp_path, models_dir, "--workers", "1", "--shard-clips", "1") for _ in range(2)]
    outs = [_finish(p)[0] for p in procs]
    counts = [_extracted(o)[0] for o in outs]
    print("extracted per process:", counts)
    assert sum(counts) == N_CLIPS
    _assert_single_run_store(tmp_path, reference)


def _readme_sbatch_script() -> str:
    """The SLURM array script exactly as docs/clusters.md gives it."""
    readme = (Path(__file__).resolve().parents[3] / "docs" / "clusters.md").read_text()
    block = re.search(r"```bash\n(.*?#SBATCH --array.*?)```", readme, re.S).group(1)
    return textwrap.dedent(block)


def test_the_readme_slurm_array_script_next_to_a_plain_run(videos, models_dir, reference, tmp_path):
    script = tmp_path / "extract_array.sh"
    script.write_text(_readme_sbatch_script())
    root = Path(__file__).resolve().parents[3]
    array = [subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(SLURM_ARRAY_TASK_ID=str(i), SLURM_ARRAY_TASK_COUNT="3", SLURM_SUBMIT_DIR=str(root),
                                       VIDEOS=str(videos), DATASET="clus", POSEBRIDGE_CACHE=str(tmp_path),
                                       POSEBRIDGE_MODELS=str(models_dir), ARGS=f"--max-frames {FRAMES} --workers 1"),
                              start_new_session=True)  # each task its own session, as under slurmstepd
             for i in range(3)]
    plain = _start(videos, tmp_path, models_dir, "--workers", "1", "--shard-clips", "1")
    outs = [_finish(p)[0] for p in [*array, plain]]
    for i, out in enumerate(outs[:3]):
        assert out.splitlines()[0].startswith(f"shard {i + 1} of 3 (SLURM array task {i}, 3 tasks)"), out
    assert outs[3].splitlines()[0].startswith("shard 1 of 1")
    counts = [_extracted(o)[0] for o in outs]
    print("extracted per process (3 array tasks, plain run):", counts)
    assert sum(counts) == N_CLIPS
    _assert_single_run_store(tmp_path, reference)
    info = subprocess.run([POSEBRIDGE, "cache", "info", "clus", "--cache-dir", str(tmp_path), "--videos", str(videos)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert info.returncode == 0 and "coverage: 4 of 4 clips" in info.stdout and "(complete; 0 failed)" in info.stdout


def test_torchrun_two_processes_as_written_in_the_readme(videos, models_dir, reference, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--no-python", "--nproc_per_node", "2", POSEBRIDGE, "extract",
           "--videos", str(videos), "--dataset", "clus", "--cache-dir", str(tmp_path), "--models-dir", str(models_dir),
           "--max-frames", str(FRAMES), "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shard 1 of 2 (torchrun RANK=0 WORLD_SIZE=2)" in out.stdout
    assert "shard 2 of 2 (torchrun RANK=1 WORLD_SIZE=2)" in out.stdout
    counts = _extracted(out.stdout)
    print("extracted per torchrun rank:", counts)
    assert len(counts) == 2 and sum(counts) == N_CLIPS
    _assert_single_run_store(tmp_path, reference)


def test_one_shard_alone_says_the_store_is_incomplete(videos, models_dir, tmp_path):
    out, _ = _finish(_start(videos, tmp_path, models_dir, "--shard", "0/4", "--workers", "1"))
    first, mine = out.splitlines()[0], int(re.search(r": (\d+) of 4 clips", out).group(1))
    assert first.startswith("shard 1 of 4 (--shard 0/4)")
    assert f"coverage: {mine} of 4 clips" in out and "INCOMPLETE" in out
    info = subprocess.run([POSEBRIDGE, "cache", "info", "clus", "--cache-dir", str(tmp_path), "--videos", str(videos)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert info.returncode == 4 and "INCOMPLETE" in info.stdout and f"n_clips: {mine}" in info.stdout


def test_kill_9_of_the_command_ends_its_workers_and_a_rerun_takes_over_their_claims(
        videos, models_dir, reference, tmp_path):
    proc = _start(videos, tmp_path, models_dir, "--workers", "2", frames=FRAMES * 2)
    deadline = time.time() + 120
    while time.time() < deadline:  # both workers hold a claim: they are extracting
        stores = list(tmp_path.glob("clus/*/claims"))
        if stores and len(list_claims(stores[0].parent)) >= 2 and len(_workers(proc.pid)) == 2:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    workers = _children(proc.pid)  # the two workers and multiprocessing's resource tracker
    assert len(_workers(proc.pid)) == 2
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as the OOM killer or `kill -9 PID` does
    killed_at = time.monotonic()
    proc.communicate()
    while any(_alive(w) for w in workers) and time.monotonic() - killed_at < 30:  # a bound, not a limit
        time.sleep(0.01)
    gone_after = time.monotonic() - killed_at
    print(f"workers gone {gone_after:.3f} s after kill -9 of their parent")
    assert not any(_alive(w) for w in workers)
    parts_at_kill = _parts(tmp_path)
    deadline = time.monotonic() + 30  # every child (workers, resource tracker) gone: nobody left to write
    while any(_alive(c) for c in _children(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _parts(tmp_path) == parts_at_kill  # nothing written after the command was gone

    path = _store(tmp_path)
    left = list_claims(path)
    assert left and all(c.is_stale(300) for c in left)  # dead owners: stale at once, no lease to wait for
    saved = {c.path: c.path.read_bytes() for c in left}
    book = ClaimBook(path)
    start = time.perf_counter()
    assert all(book.try_acquire(c.clip_id) for c in left)
    print(f"took over {len(left)} stale claims in {(time.perf_counter() - start) * 1e3:.1f} ms")
    book.release_all()
    for claim_path, body in saved.items():  # put them back as the killed run left them, for the rerun
        claim_path.write_bytes(body)
    done_before = len(CueStore.open(path).clips())
    out, _ = _finish(_start(videos, tmp_path, models_dir, "--workers", "2", frames=FRAMES * 2))
    assert _extracted(out) == [N_CLIPS - done_before] and "other processes" not in out
    info = CueStore.open(path).info()
    assert (info["n_clips"], info["n_superseded_copies"]) == (N_CLIPS, 0)
    assert list_claims(path) == []


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_keeps_finished_parts_and_says_how_to_resume(stop, videos, models_dir, tmp_path):
    # Whole clips (100 frames): after the first part lands, seconds of work are left even on a fast
    # machine, so the signal always finds the run busy (with short clips a loaded test process could
    # see the first part only after the run had finished).
    proc = _start(videos, tmp_path, models_dir, "--workers", "2", "--shard-clips", "1", frames=None)
    deadline = time.time() + 120
    while not _parts(tmp_path) and time.time() < deadline:  # one part landed, the rest is in flight
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    children, workers = _children(proc.pid), _workers(proc.pid)
    if stop == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)  # `kill PID`, or a scheduler stopping the command
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    latency = time.monotonic() - sent
    print(f"{stop} to exit: {latency:.2f} s")
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("INFO:")]
    assert len(lines) == 1 and lines[0].startswith("interrupted: kept the "), err
    assert "run the same command again to resume" in lines[0]
    # Prompt: it stopped mid-run (ordering, not a duration): fewer than all clips kept, checked below.
    assert workers and not any(_alive(w) for w in workers)  # joined before the command exits
    # multiprocessing's resource tracker ends when it reads EOF, which a loaded machine may take a
    # while to schedule; it writes nothing, so only "it ends" is asserted.
    deadline = time.monotonic() + 15
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_alive(c) for c in children)
    path = _store(tmp_path)
    kept = CueStore.open(path).clips()
    assert 1 <= len(kept) < N_CLIPS and f"kept the {len(kept)} clip(s)" in lines[0]
    assert list_claims(path) == []  # the unfinished clips are free for the next run at once
