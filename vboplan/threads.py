"""A thread pool that behaves as ``concurrent.futures.ThreadPoolExecutor(max_workers=N)`` in a ``with`` block, but
runs its tasks on threads kept by the process between pools.

Planning one environment opens a pool for each fan-out (the kinds of a wave, the settings objects, the name
lookups), and a fleet plans hundreds of environments: with fresh pools that is thousands of threads started and
joined, each start a handover of the GIL that the other threads of a busy worker wait through. Here a pool takes an
idle thread when there is one and starts one only when there is none, so a pool never waits for a thread another
pool holds (no deadlock, however pools nest), and at most ``max_workers`` of its tasks run at once, as before.

A ``with`` block left by an exception (Ctrl-C or SIGTERM in an apply raise KeyboardInterrupt in the main thread, at
any bytecode) cancels the tasks not yet started and waits only for those running: an interruption that lands between
queueing a task and handing it a thread cannot leave the exit waiting for a task no thread will run.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_for_all
from types import TracebackType
from typing import Any

#: Idle threads kept for the next pool; beyond this, a thread whose pool has no more work ends.
IDLE_KEPT = 64

_lock = threading.Lock()
_idle: list[_Runner] = []


class _Runner:
    """One kept thread: runs the tasks of whichever pool hands it work, then waits to be handed more."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._pool: ThreadPoolExecutor | None = None
        self._thread = threading.Thread(target=self._run, name="vboplan-pool", daemon=True)
        self._thread.start()

    def hand(self, pool: ThreadPoolExecutor) -> None:
        with self._ready:
            self._pool = pool
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._pool is None:
                    self._ready.wait()
                pool, self._pool = self._pool, None
            pool._drain()
            with _lock:
                if len(_idle) >= IDLE_KEPT:
                    return
                _idle.append(self)


def _forget_threads() -> None:
    """In a forked copy only the forking thread exists: the kept threads stayed behind in the parent."""
    global _lock
    _lock = threading.Lock()
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


class ThreadPoolExecutor(Executor):
    """``concurrent.futures.ThreadPoolExecutor`` for ``with`` blocks (``submit``, ``map``, ``shutdown``), on kept
    threads; at most ``max_workers`` tasks of this pool run at once."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "") -> None:
        self._max = max(1, max_workers or 8)
        self._queue: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._running = 0
        self._unfinished: set[Future[Any]] = set()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append((future, fn, args, kwargs))
            self._unfinished.add(future)
            start = self._running < self._max
            if start:
                self._running += 1
        if start:
            with _lock:
                runner = _idle.pop() if _idle else None
            if runner is None:
                runner = _Runner()
            runner.hand(self)
        return future

    def _drain(self) -> None:
        """On a kept thread: run this pool's queued tasks until none is left."""
        while True:
            with self._lock:
                if not self._queue:
                    self._running -= 1
                    return
                future, fn, args, kwargs = self._queue.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # as ThreadPoolExecutor: the error goes to whoever waits on it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del fn, args, kwargs
            with self._lock:
                self._unfinished.discard(future)
            del future

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                self._cancel_queued()
            unfinished = list(self._unfinished)
        if not wait:
            return
        try:
            wait_for_all(unfinished)
        except BaseException:
            # Interrupted while waiting: what has not started never will, and the interruption goes on.
            with self._lock:
                self._cancel_queued()
            raise

    def _cancel_queued(self) -> None:
        """Under the pool's lock: cancel every task no thread has taken yet."""
        while self._queue:
            future = self._queue.popleft()[0]
            future.cancel()
            self._unfinished.discard(future)
