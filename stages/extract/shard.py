"""Which share of the clips this process extracts: --shard i/n, torchrun, or a SLURM job array.

Clips go to shards by a stable hash of their clip_id, so every process of a job agrees on the
split without talking to the others, and a rerun (a requeued array task) gets the same clips.
Shards only spread the work: the per-clip claims (cache/claims.py) are what keep a clip from
being extracted twice, so overlaps (a shard run twice, a plain run next to an array) are harmless.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Mapping

from posebridge.cache.errors import UserError


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int
    source: str  # where it came from, said in the first line of a run
    local_rank: int | None = None  # torchrun: the GPU this process uses
    local_world_size: int = 1  # processes of this job on this machine (they share its cores)

    def holds(self, clip_id: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(clip_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def describe(self) -> str:
        return f"shard {self.index + 1} of {self.count} ({self.source})"


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise UserError(f"${name}={env[name]!r} is not an integer; fix the job's environment or pass --shard i/n")


def parse_shard(text: str) -> Shard:
    """'i/n' with 0 <= i < n."""
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise UserError(f"--shard takes i/n (0-based: 0/4 ... 3/4), got '{text}'") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text}: need n >= 1 and 0 <= i < n (shards are 0-based: 0/{max(n, 1)} ...)")
    return Shard(i, n, f"--shard {text}")


def detect_shard(option: str | None = None, env: Mapping[str, str] | None = None) -> Shard:
    """--shard beats torchrun (RANK/WORLD_SIZE), which beats a SLURM array; else the whole set."""
    env = os.environ if env is None else env
    local_size = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    if option:
        return parse_shard(option)
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        if world < 1 or not 0 <= rank < world:
            raise UserError(f"RANK={rank} is outside WORLD_SIZE={world}: start the job with torchrun")
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else None
        return Shard(rank, world, f"torchrun RANK={rank} WORLD_SIZE={world}", local, max(1, local_size))
    if "SLURM_ARRAY_TASK_ID" in env:
        return _slurm_shard(env)
    return Shard(0, 1, "whole set")


def _slurm_shard(env: Mapping[str, str]) -> Shard:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    low = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
    step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
    if "SLURM_ARRAY_TASK_COUNT" in env:
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    elif "SLURM_ARRAY_TASK_MAX" in env:
        count = (_int(env, "SLURM_ARRAY_TASK_MAX") - low) // max(step, 1) + 1
    else:
        raise UserError("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor _MAX: "
                        "pass --shard $SLURM_ARRAY_TASK_ID/<tasks>")
    index, off = divmod(task - low, max(step, 1))
    high = env.get("SLURM_ARRAY_TASK_MAX")
    # An array like --array=1,4,9 has no arithmetic task -> shard map; say so instead of guessing.
    if off or not 0 <= index < count or (high is not None and (int(high) - low) // max(step, 1) + 1 != count):
        raise UserError(f"SLURM array task {task} (min {low}, step {step}, count {count}) is not one of an evenly "
                        f"spaced range: submit with --array=0-<n-1>, or pass --shard i/n")
    return Shard(index, count, f"SLURM array task {task}, {count} tasks")


def backend_device(backend: str, device: str | None, shard: Shard) -> str | None:
    """Under torchrun a GPU backend takes cuda:LOCAL_RANK, so the processes of a node share out its GPUs."""
    if backend != "mmpose" or shard.local_rank is None or device not in (None, "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    return f"cuda:{shard.local_rank % torch.cuda.device_count()}"
