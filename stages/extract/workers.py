"""Extraction worker processes that live and stop with the command that started them.

- kill -9 of the command: each worker asked the kernel for SIGKILL when its parent dies
  (Linux PR_SET_PDEATHSIG; it fires when the parent *thread* that started the child exits, so
  workers are started here, from the main thread, one mp.Process each, not by a Pool's helper
  thread). Where that signal does not exist, the workers notice between frames that their
  parent changed (os.getppid) and exit without writing anything.
- Ctrl-C (SIGINT to the whole foreground group) or SIGTERM (scancel, a scheduler's time limit):
  workers ignore SIGINT; the command asks each to stop with SIGTERM, and a worker then drops the
  clip it is on, writes the clips it finished into a part, releases its claims and reports.
Results come back over one pipe per worker: no Pool or Queue, hence no semaphores to leak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 10.0  # a stopping worker writes at most one part; after this it is killed

_stop = threading.Event()
_parent_pid: int | None = None


class Interrupted(Exception):
    """The run was asked to stop (Ctrl-C or SIGTERM); completed clips are kept."""


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: check_stop's getppid test is the guard
        pass


def become_worker(parent_pid: int) -> None:
    """First thing in a worker process."""
    global _parent_pid
    _parent_pid = parent_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _stop.set())
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


def check_stop() -> None:
    """Called between frames. A worker whose parent is gone ends at once and writes nothing."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)
    if _stop.is_set():
        raise Interrupted


def stop_requested() -> bool:
    return _stop.is_set()


def _worker_main(conn, parent_pid: int, target: Callable[..., Any], args: tuple) -> None:
    become_worker(parent_pid)
    try:
        result = {"ok": target(*args)}
    except BaseException:  # reported to the parent, which raises it there with this text
        result = {"error": traceback.format_exc()}
    conn.send(result)
    conn.close()
    # What multiprocessing does at a worker's exit (finalizers: tqdm's lock semaphores), minus the
    # interpreter's teardown of the inference and decoding libraries, which takes ~1 s here.
    from multiprocessing import util

    util._exit_function()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class WorkerError(RuntimeError):
    pass


def run_workers(target: Callable[..., Any], arg_list: list[tuple]) -> tuple[list[Any], bool]:
    """Run target(*args) in one spawned process per args; returns (results, interrupted).

    Results are in the order of arg_list; a worker that was stopped returns what it finished.
    """
    ctx = mp.get_context("spawn")
    procs, conns = [], []
    # Children inherit SIG_IGN and Python keeps it, so a Ctrl-C during their start-up cannot
    # print a traceback from inside the bootstrap.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for args in arg_list:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_main, args=(send, os.getpid(), target, args), daemon=False)
            proc.start()
            send.close()
            procs.append(proc)
            conns.append(recv)
    finally:
        signal.signal(signal.SIGINT, previous)
    results: dict[int, Any] = {}
    interrupted = False
    try:
        _collect(procs, conns, results, deadline=None)
    except KeyboardInterrupt:
        interrupted = True
        for proc in procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        _collect(procs, conns, results, deadline=time.monotonic() + STOP_GRACE_S)
    finally:
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:  # a worker that reported still runs its exit clean-up: let it finish
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [r["error"] for r in results.values() if "error" in r]
    if errors:
        raise WorkerError("an extraction worker failed:\n" + errors[0])
    return [results[i]["ok"] for i in sorted(results) if "ok" in results[i]], interrupted


def _collect(procs, conns, results: dict[int, Any], deadline: float | None) -> None:
    pending = {i for i in range(len(procs)) if i not in results}
    while pending:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = mp.connection.wait([conns[i] for i in pending] + [procs[i].sentinel for i in pending], timeout)
        if not ready:
            return  # deadline passed
        for i in list(pending):
            if conns[i] in ready or procs[i].sentinel in ready:
                try:
                    results[i] = conns[i].recv()
                except EOFError:  # died without a word (killed, or out of memory)
                    results[i] = {"error": f"worker {i} (pid {procs[i].pid}) ended with exit code "
                                           f"{procs[i].exitcode} before reporting"}
                pending.discard(i)
