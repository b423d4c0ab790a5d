"""Per-clip claims (cache/claims.py) and shard detection (stages/extract/shard.py), on real files and processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from posebridge.cache.claims import TAKEOVER_LOCK, ClaimBook, Owner, list_claims, read_claim, remove_stale_claims
from posebridge.cache.errors import UserError
from posebridge.stages.extract.shard import detect_shard, parse_shard


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _forge(book: ClaimBook, clip_id: str, **owner) -> None:
    """Write a claim as another process would have (same format, another owner)."""
    me = Owner.this_process()
    body = {"clip_id": clip_id, "host": me.host, "boot_id": me.boot_id, "pid": me.pid, "start": me.start,
            "token": "someone-else", "created": time.time(), **owner}
    book.path(clip_id).write_text(json.dumps(body))


def test_a_claim_is_exclusive_and_released_only_by_its_owner(tmp_path):
    a, b = ClaimBook(tmp_path), ClaimBook(tmp_path)
    assert a.try_acquire("x/clip.mp4")
    assert not b.try_acquire("x/clip.mp4")  # a lives: no take-over
    assert a.try_acquire("x/clip.mp4")  # re-entrant for its owner
    b.release("x/clip.mp4")  # not b's: stays
    assert read_claim(a.path("x/clip.mp4")).token == a.token
    a.release("x/clip.mp4")
    assert not a.path("x/clip.mp4").exists() and b.try_acquire("x/clip.mp4")
    assert [c.clip_id for c in list_claims(tmp_path)] == ["x/clip.mp4"]


def test_a_dead_local_owner_is_taken_over_at_once(tmp_path):
    book = ClaimBook(tmp_path)
    _forge(book, "c", pid=_dead_pid(), start=None)
    start = time.perf_counter()
    assert book.try_acquire("c")
    took = time.perf_counter() - start
    assert read_claim(book.path("c")).token == book.token
    assert took < 1.0, took  # no lease to wait for: the kernel says the owner is gone


def test_a_reused_pid_is_not_the_owner(tmp_path):
    book = ClaimBook(tmp_path)
    me = Owner.this_process()
    if me.start is None:
        pytest.skip("no /proc: process start times are not available here")
    _forge(book, "c", pid=os.getpid(), start=me.start - 1)  # same pid, another process's start time
    assert book.try_acquire("c")


def test_another_hosts_claim_ends_with_its_lease(tmp_path):
    book = ClaimBook(tmp_path, lease_s=60)
    _forge(book, "c", host="other-node", boot_id="b", pid=1)
    assert not book.try_acquire("c")  # fresh heartbeat
    past = time.time() - 61
    os.utime(book.path("c"), (past, past))
    assert book.try_acquire("c")


def test_heartbeats_keep_a_claim_alive(tmp_path):
    book = ClaimBook(tmp_path, lease_s=60)
    assert book.try_acquire("c")
    past = time.time() - 600
    os.utime(book.path("c"), (past, past))
    with book.heartbeats(every_s=0.05):
        deadline = time.monotonic() + 60  # an event, not a duration: wait for the first beat
        while book.path("c").stat().st_mtime <= past + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert book.path("c").stat().st_mtime > past + 1  # the heartbeat renewed it


def test_take_over_is_race_free_between_takers(tmp_path):
    """Eight takers at once on one stale claim, 30 times: exactly one wins each time."""
    for round_ in range(30):
        books = [ClaimBook(tmp_path) for _ in range(8)]
        clip = f"clip-{round_}"
        _forge(books[0], clip, pid=_dead_pid(), start=None)
        barrier, wins = threading.Barrier(len(books)), []

        def take(book: ClaimBook) -> None:
            barrier.wait()
            if book.try_acquire(clip):
                wins.append(book.token)

        threads = [threading.Thread(target=take, args=(b,)) for b in books]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, (round_, wins)
        assert read_claim(books[0].path(clip)).token == wins[0]
    leftovers = [p.name for p in (tmp_path / "claims").iterdir() if p.name.startswith(".")]
    assert leftovers == [TAKEOVER_LOCK]  # no tmp or grave files


def test_remove_stale_claims_keeps_live_ones(tmp_path):
    book = ClaimBook(tmp_path)
    assert book.try_acquire("mine")
    _forge(book, "dead", pid=_dead_pid(), start=None)
    assert remove_stale_claims(tmp_path) == 1
    assert [c.clip_id for c in list_claims(tmp_path)] == ["mine"]


# --- shards -------------------------------------------------------------------------------------

CLIPS = [f"S{i:03d}/clip{i}.mp4" for i in range(200)]


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1)),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, (1, 2)),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3)),
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}, (1, 3)),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "6",
      "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"}, (2, 4)),
    # torchrun inside a SLURM array job: the ranks split the work
    ({"RANK": "0", "WORLD_SIZE": "4", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, (0, 4)),
])
def test_shard_from_the_environment(env, expected):
    shard = detect_shard(None, env)
    assert (shard.index, shard.count) == expected
    assert f"shard {expected[0] + 1} of {expected[1]}" in shard.describe()


def test_shard_option_beats_the_environment_and_bad_values_are_one_line_errors():
    assert (detect_shard("2/5", {"RANK": "0", "WORLD_SIZE": "2"}).index, 5) == (2, 5)
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(UserError, match="--array"):  # --array=1,4,9: no even spacing to map
        detect_shard(None, {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "3",
                            "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "9"})
    with pytest.raises(UserError, match="SLURM_ARRAY_TASK_COUNT"):
        detect_shard(None, {"SLURM_ARRAY_TASK_ID": "0"})


def test_shards_partition_the_clips_the_same_way_in_every_process():
    shards = [parse_shard(f"{i}/3") for i in range(3)]
    owners = [[s.holds(c) for s in shards].count(True) for c in CLIPS]
    assert owners == [1] * len(CLIPS)
    sizes = [sum(s.holds(c) for c in CLIPS) for s in shards]
    assert min(sizes) > 40  # a hash, not a range: every shard gets a fair share
    code = ("import json,sys; from posebridge.stages.extract.shard import parse_shard; "
            "s=parse_shard('1/3'); print(json.dumps([c for c in json.load(sys.stdin) if s.holds(c)]))")
    other = subprocess.run([sys.executable, "-c", code], input=json.dumps(CLIPS), capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert json.loads(other.stdout) == [c for c in CLIPS if shards[1].holds(c)]


def test_under_torchrun_a_gpu_backend_takes_the_local_ranks_gpu(monkeypatch):
    import torch

    from posebridge.stages.extract.shard import backend_device

    shard = detect_shard(None, {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert shard.local_world_size == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here: only the choice is tested
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert backend_device("mmpose", None, shard) == "cuda:1"
    assert backend_device("mmpose", "cuda", shard) == "cuda:1"
    assert backend_device("mmpose", "cpu", shard) == "cpu"  # an explicit choice stands
    assert backend_device("embedded", None, shard) is None
    assert backend_device("mmpose", None, detect_shard(None, {})) is None  # not under torchrun
