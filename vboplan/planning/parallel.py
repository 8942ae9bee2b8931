"""Planning a fleet on every core: worker processes, each planning many environments at once on its threads.

One process renders templates and diffs for only one core's worth of environments (Python runs one thread at a
time), so past a few dozen servers ``plan --all`` is bound by CPU, not by the servers. Here ``workers`` processes
each get environments over a pipe of their own, at most ``threads`` in hand at once; a finished plan goes back to
the parent at once, so a worker holds at most ``threads`` plans however large the fleet (memory bounded per
worker), and the parent gets them in any order and returns them in the order given. How many a worker has in hand
follows from its memory budget (``VBOPLAN_WORKER_MEMORY_MIB``, default :data:`WORKER_MEMORY_MIB`): it starts with
:data:`FIRST_WINDOW`, and with each plan it sends back says how many more fit, from its resident memory and the
environments it had in hand, between one and :data:`THREADS`. Nothing (no queue, no lock) is
shared between the workers, so one killed in the middle of a message cannot stall the others.

Workers start by forking this process where that is safe (Linux, and no thread of this process but the progress
line's, which could hold a lock the copy would need): they inherit the imported modules and the loaded project, so a
worker costs no start-up of its own. Elsewhere (Windows, macOS, a process with other threads: a test's emulator) they
are spawned: a fresh interpreter that imports vboplan and loads the project itself.

Requests to one server stay bounded across processes: the environments of a server that several workers may plan
at once share its ``max_in_flight`` between them. A worker that dies (killed, out of memory) fails the
environments it had in hand, by name; the others go on.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import VboplanError

if TYPE_CHECKING:
    from vboplan.core import Outcome
    from vboplan.project.config import Environment, Project

#: Environments one worker plans at once at most (each mostly waits on its server).
THREADS = 32
#: Environments a worker gets before it has said what its memory allows (with 8, a 300 MiB budget let a worker of
#: 100,000-entry environments reach 421 MiB before its first plan came back: 24 environments, 2 workers).
FIRST_WINDOW = 2
#: Resident memory (MiB) a worker aims to stay under (VBOPLAN_WORKER_MEMORY_MIB): an environment of 100,000 audit
#: entries holds ~70 MiB while it is planned, one of a few settings ~1 MiB.
WORKER_MEMORY_MIB = 1024
MEMORY_ENV = "VBOPLAN_WORKER_MEMORY_MIB"


def resident_mib() -> float | None:
    """This process's resident memory now (Linux: /proc/self/statm; Windows: its working set), else its peak
    (:func:`peak_mib`), else None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError, AttributeError):
        return process_mib("rss") if sys.platform == "win32" else peak_mib()


def process_mib(field: str) -> float | None:
    """A field of psutil's memory reading of this process, in MiB (None without psutil or without the field).
    Windows has neither /proc nor getrusage; psutil reads GetProcessMemoryInfo there: ``rss`` is the working set,
    ``peak_wset`` its peak (https://psutil.readthedocs.io/en/latest/#psutil.Process.memory_info)."""
    try:
        import psutil
    except ImportError:
        return None
    value = getattr(psutil.Process().memory_info(), field, None)
    return None if value is None else float(value) / (1024 * 1024)


def peak_mib() -> float | None:
    """The most resident memory this process has held (Linux: VmHWM in /proc/self/status, else getrusage), or None.

    VmHWM is the peak of this process's own memory map, so a program started by a large one does not begin with
    its parent's peak, as getrusage's ``ru_maxrss`` does on Linux after fork and exec (getrusage(2))."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return process_mib("peak_wset")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


class Window:
    """How many environments a worker may have in hand: no more than fit within ``budget`` MiB, and no more than
    keep its core busy.

    Memory: what it holds beyond its memory when it started, per environment it had in hand, is what one more would
    take (the largest seen, so it only shrinks the window as larger environments come); and since an environment
    holds most while its answers are decoded and diffed, and may have let go of it by the time its plan is sent back,
    the process's peak beyond that start counts too, over the most environments it ever had in hand. Core: an
    environment that took ``t`` seconds from start to plan while costing ``c`` seconds of this process's CPU kept the
    core busy ``c / t`` of its time, so ``t / c`` of them at once keep it busy (see :func:`enough_in_hand`); more would only
    queue for the interpreter, each switch between their threads costing CPU of its own.

    What one environment costs is its share of the process's CPU while it was in hand: the CPU between two events
    (one begun, :meth:`begin`; one planned, :meth:`after`) is split evenly between the environments in hand then,
    and ``c`` is the mean share of those planned. The CPU spent on environments still in hand is theirs, not
    charged to those already planned (which, with 2 planned and 12 just begun, would say each costs several times
    what it does, and keep the window small while the worker's core idles)."""

    def __init__(self, budget: float, most: int = THREADS) -> None:
        self.budget, self.most = budget, most
        self.start, self.peak_start = resident_mib(), peak_mib()
        self.each = 0.0
        self.most_in_hand = 1
        self.planned = 0
        self.finished = 0  # environments handed back, planned or failed
        self.quickest: float | None = None
        self.cpu_mark = time.process_time()  # when the CPU was last shared out
        self.held = 0  # environments begun and not yet planned
        self.share = 0.0  # CPU seconds each environment in hand all along would have been charged so far
        self.costed, self.cpu_costed = 0, 0.0  # planned environments with a share, and their shares' sum

    def first(self) -> int:
        """How many to take in hand before any was planned: :data:`FIRST_WINDOW`, or one when this process holds
        its budget already."""
        if self.start is not None and self.start >= self.budget:
            return 1
        return min(self.most, FIRST_WINDOW)

    def _share_out(self) -> None:
        """The CPU since the last event, split evenly between the environments in hand meanwhile (none: no one's)."""
        now = time.process_time()
        if self.held > 0:
            self.share += (now - self.cpu_mark) / self.held
        self.cpu_mark = now

    def begin(self) -> float:
        """One more environment in hand; what it returns goes to :meth:`after` with it (``begun``)."""
        self._share_out()
        self.held += 1
        return self.share

    def cpu_each(self) -> float | None:
        """The CPU seconds one planned environment cost (its mean share), or None before any with a share."""
        return self.cpu_costed / self.costed if self.costed else None

    def after(self, in_hand: int, took: float | None = None, begun: float | None = None) -> int:
        """The window once an environment is planned (still held, among ``in_hand``); ``took``: the seconds its
        planning took, None when it failed (a failure says nothing of what a plan costs); ``begun``: what
        :meth:`begin` returned for it (None: it was not begun here, and its CPU is not known)."""
        self._share_out()
        self.finished += 1
        if begun is not None:
            self.held = max(0, self.held - 1)
        if took is not None:
            self.planned += 1
            self.quickest = took if self.quickest is None else min(self.quickest, took)
            if begun is not None:
                self.costed += 1
                self.cpu_costed += self.share - begun
        busy = self.most
        cpu_each = self.cpu_each()
        if self.quickest is not None and cpu_each is not None:
            busy = enough_in_hand(self.quickest, cpu_each, self.most)
        now = resident_mib()
        if now is None or self.start is None:
            return busy
        self.most_in_hand = max(self.most_in_hand, in_hand)
        self.each = max(self.each, (now - self.start) / max(1, in_hand), 0.5)
        peak = peak_mib()
        if peak is not None and self.peak_start is not None and peak > self.peak_start:
            self.each = max(self.each, (peak - self.start) / self.most_in_hand)
            if self.finished == 1:
                # The first plan: the others in hand (at most FIRST_WINDOW) may not have reached their peak yet,
                # so the peak so far is taken as this one's alone (at most FIRST_WINDOW times too much; shared by
                # the two, it said a worker of large environments could take 3-4 within 300 MiB, and it peaked
                # past 300). Only then: later the peak is of many in hand, and one's share is known better.
                self.each = max(self.each, peak - self.start)
        return max(1, min(busy, int((self.budget - self.start) / self.each)))


#: Environments in hand beyond what keeps a core exactly busy (plans differ; a server may answer late).
SPARE = 1.5


def enough_in_hand(quickest: float, cpu_each: float, most: int = THREADS) -> int:
    """Environments at once that keep one core busy: ``quickest``, the shortest time one took from start to plan
    (waiting on its server, hardly on other environments), over ``cpu_each``, what one costs of this process's CPU,
    with :data:`SPARE`; between :data:`FIRST_WINDOW` and ``most``."""
    if cpu_each <= 0:
        return most
    return max(min(FIRST_WINDOW, most), min(most, math.ceil(SPARE * quickest / cpu_each)))


def memory_budget() -> float:
    from vboplan.limits import MIB, bound

    return bound(MEMORY_ENV, WORKER_MEMORY_MIB * MIB) / MIB
#: Environments per worker below which a process is not worth its start-up (about a third of a second).
PER_WORKER = 16


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def start_method() -> str:
    """How worker processes start: ``fork`` on Linux while no thread of this process but the progress line's is
    running (a fork copies only the calling thread: a lock another thread holds would stay held in the copy), else
    ``spawn``. ``VBOPLAN_WORKER_START=spawn`` forces spawn (the path Windows and macOS take, for tests)."""
    if os.environ.get("VBOPLAN_WORKER_START", "").strip().lower() == "spawn":
        return "spawn"
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    from vboplan.progress import THREAD_NAME

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and t.name != THREAD_NAME]
    return "spawn" if others else "fork"


def worker_count(count: int) -> int:
    """How many processes plan ``count`` environments: ``VBOPLAN_WORKERS`` when set, else one per core while each
    has at least :data:`PER_WORKER` environments (1 means: all in this process)."""
    given = os.environ.get("VBOPLAN_WORKERS", "").strip()
    if given:
        if not given.isdigit() or not 1 <= int(given) <= 256:
            raise VboplanError(f"VBOPLAN_WORKERS={given}: give a whole number of worker processes from 1 to 256")
        return min(int(given), max(count, 1))
    return max(1, min(cores(), count // PER_WORKER))


def server_shares(envs: Iterable[Environment], workers: int) -> dict[str, int]:
    """Requests in flight each worker may send to each server: its ``max_in_flight`` split between the workers that
    may plan its environments at the same time (a server of one environment keeps all of it)."""
    envs = list(envs)
    count = Counter(env.server for env in envs)
    bound = {env.server: env.max_in_flight for env in envs}
    return {server: max(1, bound[server] // min(workers, n)) for server, n in count.items()}


def plan_in_processes(project: Project, envs: list[Environment], targets: tuple[str, ...], allow_mass_delete: bool,
                      workers: int, threads: int = THREADS, *, excluded: tuple[str, ...] = (),
                      refresh_only: bool = False, on_outcome: Callable[[Outcome], Outcome] | None = None
                      ) -> list[Outcome]:
    """Plan ``envs`` in ``workers`` processes of ``threads`` environments each; outcomes in the order given, each
    passed through ``on_outcome`` (in this thread) as it arrives, and what that returns kept."""
    from vboplan import progress

    method = start_method()
    context = multiprocessing.get_context(method)
    settings = {"root": str(project.root), "targets": targets, "allow_mass_delete": allow_mass_delete,
                "excluded": excluded, "refresh_only": refresh_only,
                "shares": server_shares(envs, workers), "threads": threads, "memory_mib": memory_budget(),
                "log_level": logging.getLogger("vboplan").level}
    if method == "fork":
        settings["project"] = project  # inherited as it is, never pickled
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # else the copy's exit would write what this process had buffered a second time
    logging.getLogger("vboplan").info("planning %d environments in %d worker processes of %d threads (%s), "
                                      "%g MiB each", len(envs), workers, threads, method, settings["memory_mib"])
    fleet = _Dispatch(envs, min(threads, FIRST_WINDOW), on_outcome or (lambda outcome: outcome))
    try:
        for index in range(workers):
            # One pipe per worker and nothing shared between them: a worker killed mid-message leaves no lock
            # held that the others need, and the parent knows exactly which environments it had in hand.
            mine, theirs = context.Pipe(duplex=True)
            # A forked worker closes its copies of the other workers' pipe ends (so each sees its parent go).
            inherited = list(fleet.pipes) if method == "fork" else []
            process = context.Process(target=_work, args=(settings, theirs, index, inherited), daemon=True)
            with progress.still():
                process.start()
            theirs.close()
            fleet.add(process, mine)
        fleet.fill()
        while fleet.alive:
            for index in fleet.ready():
                fleet.receive(index)
                progress.phase(f"planned {len(fleet.outcomes)} of {len(envs)} environments")
    finally:
        fleet.stop()
    return fleet.ordered()


def plan_here(project: Project, envs: list[Environment], targets: tuple[str, ...], allow_mass_delete: bool,
              threads: int = THREADS, *, excluded: tuple[str, ...] = (), refresh_only: bool = False,
              on_outcome: Callable[[Outcome], Outcome] | None = None) -> list[Outcome]:
    """Plan ``envs`` on threads of this process (one worker, or none worth starting), as a worker plans them: at
    most as many at once as the memory budget allows (:data:`FIRST_WINDOW` at first, then what :class:`Window`
    says after each plan, at most ``threads``), each outcome passed through ``on_outcome`` in this thread as soon as
    it is made, and what that returns kept. Outcomes in the order given."""
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    from vboplan.core import plan_one

    settle = on_outcome or (lambda outcome: outcome)
    window = Window(memory_budget(), threads)
    allowed = window.first()
    pending = list(range(len(envs)))[::-1]
    running: dict[Future[tuple[Outcome, float]], tuple[int, float]] = {}
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(envs)))) as pool:
        while pending or running:
            while pending and len(running) < allowed:
                index = pending.pop()
                begun = window.begin()
                running[pool.submit(_timed, plan_one, project, envs[index], targets, allow_mass_delete,
                                    excluded=excluded, refresh_only=refresh_only)] = (index, begun)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcome, took = future.result()
                index, begun = running[future]
                # With this plan still held, as a worker measures it.
                allowed = window.after(len(running), took if outcome.error is None else None, begun)
                del running[future]
                outcomes[index] = settle(outcome)
    return [outcomes[index] for index in range(len(envs))]


def _timed(plan: Callable[..., Outcome], *args: Any, **kwargs: Any) -> tuple[Outcome, float]:
    """``plan(*args, **kwargs)`` and the seconds it took."""
    began = time.perf_counter()
    outcome = plan(*args, **kwargs)
    return outcome, time.perf_counter() - began


class _Dispatch:
    """The parent's side: sends each worker environments while it has fewer in hand than its window (``window``
    at first, then what it says with each result), takes back each result as it arrives, and fails by name the
    environments of a worker that died."""

    def __init__(self, envs: list[Environment], window: int, settle: Callable[[Outcome], Outcome]) -> None:
        from collections import deque

        self.settle = settle
        self.envs = envs
        self.by_name = {env.name: env for env in envs}
        self.pending = deque(envs)
        self.window = window
        self.processes: list[Any] = []
        self.pipes: list[Any] = []
        self.in_hand: list[set[str]] = []
        self.windows: list[int] = []
        self.closed: list[bool] = []
        self.alive: set[int] = set()
        self.outcomes: dict[str, Outcome] = {}

    def add(self, process: Any, pipe: Any) -> None:
        index = len(self.processes)
        self.processes.append(process)
        self.pipes.append(pipe)
        self.in_hand.append(set())
        self.windows.append(self.window)
        self.closed.append(False)
        self.alive.add(index)

    def fill(self) -> None:
        """The first environments, one to each worker in turn (a small fleet spreads over every worker)."""
        while self.pending and any(len(self.in_hand[i]) < self.windows[i] for i in self.alive):
            for index in sorted(self.alive):
                if self.pending and len(self.in_hand[index]) < self.windows[index]:
                    self.feed(index, 1)
        for index in sorted(self.alive):
            self.feed(index, 0)

    def feed(self, index: int, most: int | None = None) -> None:
        """Send worker ``index`` environments (``most`` of them at most) while it has fewer than its window; once
        none is left, tell it to finish."""
        try:
            while self.pending and len(self.in_hand[index]) < self.windows[index] and (most is None or most > 0):
                env = self.pending[0]
                self.pipes[index].send(env)  # the environment as selected (with its --var values)
                self.in_hand[index].add(self.pending.popleft().name)
                most = None if most is None else most - 1
            if not self.pending and not self.closed[index]:
                self.pipes[index].send(None)  # nothing more: finish what you have, then exit
                self.closed[index] = True
        except OSError:
            self.died(index)  # its end of the pipe is gone: it died

    def ready(self) -> list[int]:
        from multiprocessing.connection import wait

        waitables = {id(self.pipes[i]): i for i in self.alive}
        waitables.update({id(self.processes[i].sentinel): i for i in self.alive})
        objects = [self.pipes[i] for i in self.alive] + [self.processes[i].sentinel for i in self.alive]
        found = wait(objects, timeout=5)
        return sorted({waitables[id(obj)] for obj in found})

    def receive(self, index: int) -> None:
        from vboplan import sensitive
        from vboplan.core import Outcome

        pipe = self.pipes[index]
        try:
            while index in self.alive and pipe.poll():
                name, plan, error, requests, secrets, window = pipe.recv()
                sensitive.remember_forms(secrets)
                self.in_hand[index].discard(name)
                self.windows[index] = window
                self.feed(index)  # the next environment first: the worker goes on while this one is saved
                self.outcomes[name] = self.settle(Outcome(self.by_name[name], plan, error, requests))
        except (EOFError, OSError):
            self.died(index)
            return
        if index in self.alive and not self.processes[index].is_alive():
            self.died(index)

    def died(self, index: int) -> None:
        """Worker ``index`` has gone: every environment it had in hand fails, naming why; the others go on."""
        from vboplan.core import Outcome

        if index not in self.alive:
            return
        self.alive.discard(index)
        process = self.processes[index]
        process.join(timeout=5)
        for name in sorted(self.in_hand[index]):
            self.outcomes[name] = self.settle(Outcome(self.by_name[name], error=VboplanError(
                f"environment '{name}': the worker process planning it stopped (exit code {process.exitcode}); "
                "it was not planned")))
        self.in_hand[index].clear()
        for other in sorted(self.alive):
            self.feed(other)

    def stop(self) -> None:
        for index in sorted(self.alive):
            if self.processes[index].is_alive():
                self.processes[index].terminate()
        for process in self.processes:
            process.join(timeout=10)
        for pipe in self.pipes:
            pipe.close()

    def ordered(self) -> list[Outcome]:
        from vboplan.core import Outcome

        for env in self.envs:
            if env.name not in self.outcomes:
                self.outcomes[env.name] = self.settle(Outcome(env, error=VboplanError(
                    f"environment '{env.name}': not planned (every worker process stopped before it)")))
        return [self.outcomes[env.name] for env in self.envs]


# -- in the worker --------------------------------------------------------------------------------------------

def _work(settings: dict[str, Any], pipe: Any, index: int, inherited: list[Any] | None = None) -> None:
    """A worker process: plan the environments the parent sends until it sends None, each result sent back as it
    is made (at most ``threads`` at once)."""
    from vboplan import progress, sensitive
    from vboplan.core import plan_one
    from vboplan.project.config import load_project

    for other in inherited or ():
        other.close()
    progress.forget()  # a forked copy shows no progress line of its own: the parent's shows the fleet's
    _setup_logging(settings["log_level"])
    project = settings.get("project") or load_project(Path(settings["root"]))
    shares: dict[str, int] = settings["shares"]
    lock = threading.Lock()
    window = Window(settings.get("memory_mib", WORKER_MEMORY_MIB), settings["threads"])
    planning = [0]  # environments in hand

    def one(env: Environment, begun: float) -> None:
        bounded = replace(env, max_in_flight=min(env.max_in_flight, shares.get(env.server, env.max_in_flight)))
        began = time.perf_counter()
        try:
            outcome = plan_one(project, bounded, settings["targets"], settings["allow_mass_delete"],
                               excluded=settings["excluded"], refresh_only=settings["refresh_only"])
            plan, error, requests = outcome.plan, _portable(outcome.error), outcome.requests
        except Exception as exc:  # a bug must fail its environment, not leave the parent waiting for it
            plan, error, requests = None, VboplanError(f"environment '{env.name}': {type(exc).__name__}: {exc}"), 0
        took = time.perf_counter() - began if error is None else None
        with lock:  # one message at a time on the pipe; the secrets remembered so far go with it
            fits = window.after(planning[0], took, begun)
            planning[0] -= 1
            try:
                pipe.send((env.name, plan, error, requests, sensitive.remembered(), fits))
            except (OSError, ValueError):
                return  # the parent has gone
            except Exception as exc:  # a plan that cannot be pickled: its environment fails, named
                pipe.send((env.name, None, VboplanError(f"environment '{env.name}': its plan could not be sent "
                                                        f"back ({type(exc).__name__}: {exc})"), requests,
                           sensitive.remembered(), fits))

    with ThreadPoolExecutor(max_workers=settings["threads"]) as pool:
        while True:
            try:
                env = pipe.recv()
            except (EOFError, OSError):
                break
            if env is None:
                break
            with lock:
                planning[0] += 1
                begun = window.begin()
            pool.submit(one, env, begun)


def _portable(error: VboplanError | None) -> VboplanError | None:
    """The error as the parent can rebuild it (an error class whose arguments are not its message is sent as a
    plain VboplanError with the same text)."""
    import pickle

    if error is None:
        return None
    try:
        return pickle.loads(pickle.dumps(error))  # type: ignore[no-any-return]
    except Exception:
        return VboplanError(str(error))


def _setup_logging(level: int) -> None:
    from vboplan.sensitive import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("vboplan")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
