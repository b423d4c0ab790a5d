"""Per-clip claims: each clip is extracted once across processes and hosts that share the cache.

    <store dir>/claims/<sha1(clip_id)[:32]>.json   {clip_id, host, boot_id, pid, start, token}

A claim is one small file, created whole and atomically (written to a unique tmp file, then
hard-linked to its name: link fails if the name exists, on local disks and NFS alike). Its mtime
is the heartbeat, refreshed by the owner while it works on the clip. The owner removes it only
after the part holding the clip is renamed into place, or after the clip's failure is logged.

A claim is stale, and may be taken over, when
- its owner ran on this host (same hostname and boot id) and that process is gone, a zombie, or
  a newer process with the same pid (the start time differs), or
- its owner ran on another host and its heartbeat is older than the lease.
There is no lock a killed process can hold forever: the kernel tells us a local owner is dead,
and the lease ends a remote one.

Take-over is race-free between takers: it happens under an exclusive flock on `claims/.takeover.lock`
(held for microseconds; the kernel, or the NFS server's lease, drops it when its holder dies, so
it too cannot be left held), after re-reading the claim and checking it is still the very file
judged stale (inode + token); the new claim then replaces it with one atomic rename. A plain
first claim needs no lock: a stale claim's name is taken, so its exclusive link fails.
On a filesystem without flock (Lustre mounted without -o flock) take-over falls back to renaming
the stale claim to a private name and checking what was moved; there, two takers racing with a
third, fresh claimer can both extract a clip (the store keeps the newest copy; `cache compact`
removes the other).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from posebridge.cache import walk

CLAIMS = "claims"
TAKEOVER_LOCK = ".takeover.lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_takeover_mutex = threading.Lock()  # flock over NFS is per process: threads queue here first
# Another host's claim is dead once its heartbeat is this old; heartbeats come every lease / 6.
DEFAULT_LEASE_S = float(os.environ.get("POSEBRIDGE_CLAIM_LEASE_S", 300))


def _boot_id() -> str:
    """Tells two machines (or two boots of one machine) with the same hostname apart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a local process, None if it does not exist
    or /proc is not there (then only the pid is checked)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("gone", 0)
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def process_start(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat and stat[0] != "gone" else None


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str
    pid: int
    start: int | None  # process start time; a reused pid has another one

    @classmethod
    def this_process(cls) -> Owner:
        return cls(socket.gethostname(), _boot_id(), os.getpid(), process_start(os.getpid()))

    def is_local(self) -> bool:
        return self.host == socket.gethostname() and self.boot_id == _boot_id()

    def is_dead(self) -> bool:
        """Only meaningful for a local owner."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
        stat = _proc_stat(self.pid)
        if stat is None:
            return False
        state, start = stat
        return state in ("gone", "Z", "X") or (self.start is not None and start != self.start)


@dataclass(frozen=True)
class Claim:
    """A claim file as seen at one moment."""

    path: Path
    clip_id: str | None
    owner: Owner | None  # None: unreadable content
    token: str | None
    inode: int
    mtime: float

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.mtime

    def is_stale(self, lease_s: float, now: float | None = None) -> bool:
        if self.owner is not None and self.owner.is_local():
            return self.owner.is_dead()
        return self.age(now) > lease_s


class ClaimBook:
    """The claims of one store, as used by one process (its token marks its own claims)."""

    def __init__(self, store_dir: str | os.PathLike, lease_s: float = DEFAULT_LEASE_S):
        self.dir = Path(store_dir) / CLAIMS
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lease_s = lease_s
        self.owner = Owner.this_process()
        self.token = uuid.uuid4().hex
        self._held: set[str] = set()
        self._lock = threading.Lock()  # the heartbeat thread reads _held

    def path(self, clip_id: str) -> Path:
        return self.dir / f"{hashlib.sha1(clip_id.encode()).hexdigest()[:32]}.json"

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def try_acquire(self, clip_id: str) -> bool:
        """True when this process now holds the clip's claim (a stale one is taken over)."""
        path = self.path(clip_id)
        for _ in range(4):  # each retry follows a change made by someone else
            if self._create(path, clip_id):
                with self._lock:
                    self._held.add(clip_id)
                return True
            seen = read_claim(path)
            if seen is None:
                continue  # released in the meantime
            if seen.token == self.token:
                return True
            if not seen.is_stale(self.lease_s):
                return False
            taken = self._take_over(seen, clip_id)
            if taken is not None:
                return taken
        return False

    def release(self, clip_id: str) -> None:
        """Remove our claim (only if it is still ours: a taken-over claim belongs to its taker)."""
        with self._lock:
            self._held.discard(clip_id)
        path = self.path(clip_id)
        with takeover_lock(self.dir):  # so no take-over lands between the check and the unlink
            seen = read_claim(path)
            if seen is not None and seen.token == self.token:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def release_all(self) -> None:
        for clip_id in self.held():
            self.release(clip_id)

    def heartbeat(self) -> None:
        for clip_id in self.held():
            with contextlib.suppress(FileNotFoundError):  # released, or briefly moved by a taker
                os.utime(self.path(clip_id))

    @contextlib.contextmanager
    def heartbeats(self, every_s: float | None = None) -> Iterator[None]:
        """Refresh the held claims from a background thread while the block runs."""
        every_s = every_s or max(0.5, self.lease_s / 6)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                self.heartbeat()

        thread = threading.Thread(target=beat, name="claim-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _take_over(self, seen: Claim, clip_id: str) -> bool | None:
        """True: ours now. False: it is live after all. None: it changed; look again."""
        with takeover_lock(self.dir) as locked:
            if not locked:
                remove_if_unchanged(seen)
                return None
            now = read_claim(seen.path)
            if now is None or (now.inode, now.token) != (seen.inode, seen.token):
                return None
            if not now.is_stale(self.lease_s):
                return False
            tmp = self._write_tmp(seen.path, self._body(clip_id))
            os.replace(tmp, seen.path)
        with self._lock:
            self._held.add(clip_id)
        return True

    def _body(self, clip_id: str) -> dict:
        return {"clip_id": clip_id, "host": self.owner.host, "boot_id": self.owner.boot_id,
                "pid": self.owner.pid, "start": self.owner.start, "token": self.token, "created": time.time()}

    def _write_tmp(self, path: Path, body: dict) -> Path:
        tmp = self.dir / f".tmp-{self.token}-{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(body))
        return tmp

    def _create(self, path: Path, clip_id: str) -> bool:
        tmp = self._write_tmp(path, self._body(clip_id))
        try:
            os.link(tmp, path)  # atomic and exclusive: the claim appears whole, or not at all
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()


@contextlib.contextmanager
def takeover_lock(folder: Path) -> Iterator[bool]:
    """Exclusive across threads and processes (and hosts, where flock reaches the file server).
    Yields False where the filesystem has no flock."""
    with _takeover_mutex:
        fd = os.open(folder / TAKEOVER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                if err.errno not in _NO_FLOCK:
                    raise
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing drops the flock


def read_claim(path: Path) -> Claim | None:
    """The claim at `path`, None if there is none."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
    except FileNotFoundError:
        return None
    return _parse(path, raw, st)


def _parse(path: Path, raw: bytes, st: os.stat_result) -> Claim:
    try:
        body = json.loads(raw)
        owner = Owner(str(body["host"]), str(body["boot_id"]), int(body["pid"]), body["start"])
        return Claim(path, body.get("clip_id"), owner, body["token"], st.st_ino, st.st_mtime)
    except (ValueError, KeyError, TypeError):  # not ours to read: it ages out by its mtime
        return Claim(path, None, None, None, st.st_ino, st.st_mtime)


def remove_if_unchanged(seen: Claim) -> bool:
    """Without flock: remove the claim judged stale unless it changed meanwhile; True if this call removed it."""
    grave = seen.path.with_name(f".grave-{uuid.uuid4().hex}")
    try:
        os.rename(seen.path, grave)  # of two takers, only one moves a given file
    except FileNotFoundError:
        return False
    try:
        moved = _parse(seen.path, grave.read_bytes(), os.stat(grave))
        if (moved.inode, moved.token) == (seen.inode, seen.token):
            return True
        # A fresh claim replaced the stale one after we judged it: put it back. Should a third
        # process have claimed the free name in this instant, both work on the clip; the store
        # keeps one copy (the newest) and `cache compact` removes the other.
        with contextlib.suppress(FileExistsError):
            os.link(grave, seen.path)
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            grave.unlink()


def list_claims(store_dir: str | os.PathLike) -> list[Claim]:
    folder = Path(store_dir) / CLAIMS
    out = []
    for entry in walk.list_entries(folder):  # [] when there is no claims folder
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            claim = read_claim(Path(entry.path))
            if claim is not None:
                out.append(claim)
    return out


def remove_stale_claims(store_dir: str | os.PathLike, lease_s: float = DEFAULT_LEASE_S) -> int:
    """Remove dead claims and the tmp/grave files of killed processes; returns claims removed."""
    folder = Path(store_dir) / CLAIMS
    removed = 0
    for claim in list_claims(store_dir):
        if not claim.is_stale(lease_s):
            continue
        with takeover_lock(folder) as locked:
            if not locked:
                removed += remove_if_unchanged(claim)
                continue
            now = read_claim(claim.path)
            if now is not None and (now.inode, now.token) == (claim.inode, claim.token) and now.is_stale(lease_s):
                claim.path.unlink()
                removed += 1
    for entry in walk.list_entries(folder):  # a kill between write and unlink leaves these behind
        if entry.name.startswith(".") and entry.name != TAKEOVER_LOCK:
            mtime = walk.mtime(entry.path)  # None: another process removed it meanwhile
            if mtime is not None and time.time() - mtime > lease_s:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    return removed
