"""Figures drawn by helper processes, on every core, after training.

`compnet train` with figures (the default) spends most of its time outside training drawing them: an experiment
draws three figures per cell and a few of its own (Tables 1+2: 61), each a few tens of milliseconds of
matplotlib, on one core. A `Painter` is a few helper processes (one per core, at most `MAX_HELPERS`) started
by the command line as soon as it knows that a run will draw (after composing its configuration, before torch
is imported): they import matplotlib and pandas and build and draw each figure once while the main process
imports torch on another core, and then wait, idle, until training is over. Each draws the figures it is
handed from what the run folder holds (`plots.draw_cells(..., names=...)`), so what it draws is what `compnet
plot` redraws; the main process writes the run's files and, once a target's cells are written, hands out
their figures as jobs (a figure of a share of the cells, about two per helper in all: a helper draws the
axes of a figure once for its share), so every core stays busy to the end.

- One helper imports and warms up (~2 s of one core, beside the main process's ~3 s of start-up on another);
  on Linux it then forks the others from itself, warm. `ready()` waits for them before training starts, so
  none is still importing on the training clock, and the command waits for every figure (`wait`) and closes
  them (`close`) before it returns: nothing is left running.
- A helper does not import torch: targets are evaluated point by point in float64, as the engine does
  (`Target.values`). A network of blocks is drawn by the main process (blockplots evaluates it with torch).
- A figure that fails raises `DrawingError` in the main process, with the helper's traceback; a helper that
  cannot start (no matplotlib, …) leaves the figures to the main process, as without a painter. A helper that
  ends while drawing (killed, out of memory) hands its figure to another; with none left, the main process
  draws the figures no helper had started. A figure on which two helpers end, or the last one, fails
  (`DrawingError`): it may be what ended them.
- Ctrl-C stops the main process only (the helpers ignore SIGINT); closing their pipes ends them.
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HELPERS = 8
# a helper draws on one core: numpy's BLAS threads (OpenBLAS spins a while after each product) would only
# take cycles from the other helpers (measured: two helpers drew at a third of one's speed each)
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_HEADER = struct.Struct(">Q")


class DrawingError(RuntimeError):
    """A figure failed in a helper process: its traceback is the message."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def helpers_for(figures: int) -> int:
    """How many helpers pay for a run drawing `figures` figures: one per core, at most one per figure."""
    return max(1, min(cores(), MAX_HELPERS, figures))


@dataclass
class Job:
    module: str
    function: str
    args: tuple
    kwargs: dict
    done: bool = False
    result: Any = None
    error: str | None = None
    seconds: float = 0.0  # the helper's time on it: wall clock, and its own CPU time
    cpu: float = 0.0
    deaths: int = 0  # helpers that ended while drawing it


@dataclass
class _Helper:
    process: subprocess.Popen  # the process started from here: this helper, or the one it was forked from
    stdin: Any  # its pipes
    stdout: Any
    job: Job | None = None
    ready: bool = False
    dead: bool = False
    pid: int | None = None  # its own (a fork's differs from `process`'s)


def _send(stream: Any, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: Any) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (n,) = _HEADER.unpack(header)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


class Painter:
    """`n` helper processes that draw figures (see the module's docstring). `warm`: what each builds and draws
    once while it waits (`plots.warm`'s keywords, e.g. the depths of the run's layer figures). A thread per
    helper reads its results and hands it the next queued figure at once, whatever this process is doing."""

    def __init__(self, n: int, warm: dict[str, Any] | None = None) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # the compnet this process runs, not the cwd's
        self._lock = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: list[Job] = []
        self._helpers: list[_Helper] = []
        self._failed: str | None = None  # a helper that could not start: why
        self.started, self.ready_at, self.n = time.perf_counter(), None, n
        # one process imports and warms up; on Linux it then forks the others from itself, warm, so that their
        # start costs one helper's imports, not n (elsewhere each is started on its own)
        forks = n if sys.platform.startswith("linux") else 1
        for first in range(0, n, forks):
            pipes = [(os.pipe(), os.pipe()) for _ in range(min(forks, n - first))]  # (to it, from it)
            theirs = [fd for (r, _), (_, w) in pipes for fd in (r, w)]
            code = f"import sys; sys.path.insert(0, {root!r}); from compnet.painter import serve; serve({theirs})"
            process = subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.DEVNULL, pass_fds=theirs, env=os.environ | ONE_THREAD
            )
            for fd in theirs:
                os.close(fd)
            for (_, to_it), (from_it, _) in pipes:
                helper = _Helper(process, os.fdopen(to_it, "wb"), os.fdopen(from_it, "rb"))
                self._helpers.append(helper)
                _send(helper.stdin, warm or {})
        for helper in self._helpers:
            threading.Thread(target=self._read, args=(helper,), daemon=True).start()

    def _read(self, helper: _Helper) -> None:
        while True:
            try:
                message = _receive(helper.stdout)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                message = None
            with self._lock:
                if message is None:  # the helper is gone (killed, out of memory): its job goes to another
                    helper.dead = True
                    if (job := helper.job) is not None:
                        helper.job, job.deaths = None, job.deaths + 1
                        if job.deaths > 1:  # a second helper ended on it: the figure's doing, not theirs
                            job.done, job.error = True, "the helper process ended, twice on this figure"
                        else:
                            self._queue.appendleft(job)
                elif message[0] == "ready":
                    helper.ready, helper.pid = True, message[1]
                elif message[0] == "failed":
                    helper.dead, self._failed = True, message[1]
                elif helper.job is not None:
                    job, helper.job = helper.job, None
                    ok, value, job.seconds, job.cpu = message
                    job.result, job.error, job.done = (value, None, True) if ok else (None, value, True)
                self._dispatch()
                self._lock.notify_all()
            if message is None or helper.dead:
                return

    def ready(self) -> bool:
        """Wait until every helper has imported and warmed up; False (and the painter closed) if one could not."""
        with self._lock:
            self._lock.wait_for(lambda: all(h.ready or h.dead for h in self._helpers))
            ok = self._failed is None and any(h.ready and not h.dead for h in self._helpers)
            self.ready_at = self.ready_at or time.perf_counter()
        if not ok:
            self.close()
        return ok

    def stats(self) -> dict[str, float]:
        """What the helpers did: how many, their warm-up (start to ready), the jobs done and their time on them."""
        done = [j for j in self._jobs if j.done]
        return {
            "helpers": self.n,
            "warm_up": round((self.ready_at or time.perf_counter()) - self.started, 4),
            "jobs": len(done),
            "seconds": round(sum(j.seconds for j in done), 4),
            "cpu": round(sum(j.cpu for j in done), 4),
        }

    @property
    def pids(self) -> list[int | None]:
        """The helpers' process ids (known once they are ready)."""
        return [h.pid for h in self._helpers]

    def submit(self, module: str, function: str, *args: Any, first: bool = False, **kwargs: Any) -> Job:
        """Queue `module.function(*args, **kwargs)` for a helper (`first`: ahead of the queued ones)."""
        job = Job(module, function, args, kwargs)
        with self._lock:
            self._jobs.append(job)
            (self._queue.appendleft if first else self._queue.append)(job)
            self._dispatch()
        return job

    def _dispatch(self) -> None:
        """Hand queued jobs to idle helpers (the lock held)."""
        for helper in self._helpers:
            if not self._queue:
                return
            if helper.ready and not helper.dead and helper.job is None:
                helper.job = job = self._queue.popleft()
                try:
                    _send(helper.stdin, (job.module, job.function, job.args, job.kwargs))
                except OSError:  # it has ended: its reader says so, and fails the job
                    pass

    def wait(self, jobs: list[Job] | None = None) -> None:
        """Until `jobs` (default: every job submitted) are drawn; raise DrawingError for the first that failed.
        Jobs left when every helper has ended are drawn here, in this process."""
        with self._lock:
            jobs = list(self._jobs) if jobs is None else jobs

            def settled() -> bool:
                live = any(not h.dead for h in self._helpers)
                return all(job.done for job in jobs) or not live

            self._lock.wait_for(settled)
            left = [job for job in jobs if not job.done]
            for job in left:
                if job in self._queue:
                    self._queue.remove(job)
        for job in left:  # one a helper ended on might be what ended it: not tried in this process
            if job.deaths:
                job.error, job.done = "the helper process ended while drawing it, and no other is left", True
                continue
            ok, value, job.seconds, job.cpu = _call(job.module, job.function, job.args, job.kwargs)
            job.result, job.error, job.done = (value, None, True) if ok else (None, value, True)
        for job in jobs:
            if job.error:
                raise DrawingError(
                    f"{job.module}.{job.function}{job.args[:1]} failed in a helper process:\n{job.error}"
                )

    def close(self, now: bool = False) -> None:
        """End the helpers (their pipes closed; killed if they do not end within a few seconds, or at once
        with `now`: a refused run does not wait for their warm-up) and wait for them."""
        with self._lock:
            helpers, self._helpers = self._helpers, []
            self._queue.clear()
        for helper in helpers:
            try:
                helper.stdin.close()
            except OSError:
                pass
        for process in dict.fromkeys(h.process for h in helpers):  # a forking helper waits for its forks
            try:
                process.wait(timeout=0 if now else 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def imported(module: str) -> bool:
    """Whether `module` is imported in this process (the tests ask a helper whether it imported torch)."""
    return module in sys.modules


def serve(fds: list[int]) -> None:
    """A helper's start: import and warm up, fork one helper per further pair of pipes in `fds` (read from
    the main process, write to it), then serve the first pair; wait for the forks before exiting."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what a figure prints goes to stderr
    pairs = [(os.fdopen(fds[k], "rb"), os.fdopen(fds[k + 1], "wb")) for k in range(0, len(fds), 2)]
    try:
        warm = _receive(pairs[0][0])
        for inp, _ in pairs[1:]:
            _receive(inp)  # the same warm-up for each
        from compnet import plots

        plots.warm(**warm)
    except EOFError:
        return
    except Exception:
        import traceback

        for _, out in pairs:
            _send(out, ("failed", traceback.format_exc()))
        return
    forks = []
    for k in range(1, len(pairs)):
        pid = os.fork()
        if pid == 0:  # a fork: serves pair k only
            for j, (inp, out) in enumerate(pairs):
                if j != k:
                    inp.close()
                    out.close()
            _serve(*pairs[k])
            os._exit(0)  # no interpreter teardown: its files are written and closed, its results sent
        forks.append(pid)
    for inp, out in pairs[1:]:
        inp.close()
        out.close()
    _serve(*pairs[0])
    for pid in forks:
        os.waitpid(pid, 0)
    os._exit(0)  # as a fork: matplotlib's and pandas' teardown would only delay the command's exit


def _call(module: str, function: str, args: tuple, kwargs: dict) -> tuple[bool, Any, float, float]:
    """`module.function(*args, **kwargs)`: (True, its result) or (False, the traceback), wall and CPU seconds."""
    import importlib
    import traceback

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        ok, value = True, getattr(importlib.import_module(module), function)(*args, **kwargs)
    except Exception:
        ok, value = False, traceback.format_exc()
    return ok, value, time.perf_counter() - t0, time.process_time() - c0


def _serve(inp: Any, out: Any) -> None:
    """Say `ready`, then run each job sent on `inp` until it closes; the result, or the traceback, on `out`."""
    try:
        _send(out, ("ready", os.getpid()))
    except OSError:
        return
    while True:
        try:
            module, function, args, kwargs = _receive(inp)
        except EOFError:
            return
        message = _call(module, function, args, kwargs)
        try:
            _send(out, message)
        except (OSError, pickle.PicklingError):
            return
