"""vboplan.threads: pools that behave as ThreadPoolExecutor in a ``with`` block, on threads kept between pools."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from concurrent.futures import CancelledError

import pytest

from vboplan.threads import ThreadPoolExecutor


def test_pools_run_on_kept_threads_and_never_more_than_max_workers_at_once() -> None:
    seen: set[int] = set()
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Event()

    def task(value: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(0.01)
        with lock:
            running -= 1
        seen.add(threading.get_ident())
        return value * 2

    for _ in range(20):
        with ThreadPoolExecutor(max_workers=3) as pool:
            assert list(pool.map(task, range(12))) == [v * 2 for v in range(12)]
    assert most <= 3
    assert len(seen) <= 10   # 20 pools of 3 threads took the same few threads, not 60 new ones


def test_nested_pools_never_wait_for_each_other() -> None:
    def outer(n: int) -> int:
        with ThreadPoolExecutor(max_workers=2) as inner:
            return sum(inner.map(lambda k: k + n, range(4)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(outer, n) for n in range(16)]
        assert [f.result(timeout=30) for f in futures] == [6 + 4 * n for n in range(16)]


def test_an_error_reaches_whoever_waits_and_cancelled_work_never_runs() -> None:
    ran: list[int] = []
    release = threading.Event()

    def fail() -> None:
        raise ValueError("boom")

    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(ValueError, match="boom"):
            pool.submit(fail).result()
        blocker = pool.submit(release.wait, 10)
        later = pool.submit(ran.append, 1)
        assert later.cancel()
        release.set()
        blocker.result()
    with pytest.raises(CancelledError):
        later.result()
    assert ran == []
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 2)


_INTERRUPTED_POOLS = """
import signal, sys
from vboplan.threads import ThreadPoolExecutor

def interrupt(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, interrupt)
interrupted = pools = 0
while interrupted < 1000:
    try:
        try:
            # A Ctrl-C a fraction of a millisecond into the block: while tasks are queued and handed to threads.
            signal.setitimer(signal.ITIMER_REAL, 0.0002 + (pools % 9) * 0.0001)
            with ThreadPoolExecutor(max_workers=4) as pool:
                for _ in range(500):
                    pool.submit(int)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        interrupted += 1
    pools += 1
print(interrupted)
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX interval timers deliver the interruptions")
def test_an_interruption_anywhere_in_a_pool_never_leaves_its_exit_waiting() -> None:
    # A KeyboardInterrupt (Ctrl-C, or SIGTERM in an apply) can land between queueing a task and handing it a thread;
    # the block's exit then waited forever for a task no thread would run. 1000 interruptions at varied moments.
    try:
        done = subprocess.run([sys.executable, "-c", _INTERRUPTED_POOLS], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a pool's exit still waited after an interruption")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000"


def test_an_interruption_while_waiting_cancels_what_has_not_started() -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    def first() -> None:
        started.set()
        release.wait(10)

    with pytest.raises(KeyboardInterrupt):
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(first)
            queued = [pool.submit(ran.append, n) for n in range(5)]
            started.wait(10)
            threading.Timer(0.2, release.set).start()
            raise KeyboardInterrupt
    assert running.done() and not running.cancelled()   # what had started finished before the exit returned
    assert all(f.cancelled() for f in queued) and ran == []
