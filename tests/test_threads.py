"""vboplan.threads: pools that behave as ThreadPoolExecutor in a ``with`` block, on threads kept between pools."""

from __future__ import annotations

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
