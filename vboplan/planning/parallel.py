"""Planning a fleet on every core: worker processes, each planning many environments at once on its threads.

One process renders templates and diffs for only one core's worth of environments (Python runs one thread at a
time), so past a few dozen servers ``plan --all`` is bound by CPU, not by the servers. Here the environments go to a
task queue that ``workers`` processes drain, each with ``threads`` environments in flight; a finished plan goes back
to the parent at once, so a worker holds at most ``threads`` plans however large the fleet (memory bounded per
worker), and the parent gets them in any order and returns them in the order given.

Requests to one server stay bounded across processes: the environments of a server that several workers may plan
at once share its ``max_in_flight`` between them. A worker that dies (killed, out of memory) fails the
environments it had in hand, by name; the others go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import VboplanError

if TYPE_CHECKING:
    from vboplan.core import Outcome
    from vboplan.project.config import Environment, Project

#: Environments one worker plans at once (each mostly waits on its server).
THREADS = 32
#: Environments per worker below which a process is not worth its start-up (about a third of a second).
PER_WORKER = 16


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


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
                      refresh_only: bool = False) -> list[Outcome]:
    """Plan ``envs`` in ``workers`` processes of ``threads`` environments each; outcomes in the order given."""
    from vboplan import progress, sensitive
    from vboplan.core import Outcome

    context = multiprocessing.get_context("spawn")  # the same on every platform; no fork of a threaded process
    tasks: Any = context.Queue()
    results: Any = context.Queue()
    for env in envs:
        tasks.put(env)  # the environment as selected (with its --var values), not only its name
    for _ in range(workers * threads):
        tasks.put(None)
    settings = {"root": str(project.root), "targets": targets, "allow_mass_delete": allow_mass_delete,
                "excluded": excluded, "refresh_only": refresh_only,
                "shares": server_shares(envs, workers), "threads": threads,
                "log_level": logging.getLogger("vboplan").level}
    processes = [context.Process(target=_work, args=(settings, tasks, results, index), daemon=True)
                 for index in range(workers)]
    by_name = {env.name: env for env in envs}
    logging.getLogger("vboplan").info("planning %d environments in %d worker processes of %d threads", len(envs),
                                      workers, threads)
    outcomes: dict[str, Outcome] = {}
    in_hand: dict[str, int] = {}   # environment -> the worker planning it
    finished: set[int] = set()
    try:
        for process in processes:
            process.start()
        while len(finished) < workers and len(outcomes) < len(envs):
            try:
                message = results.get(timeout=0.5)
            except queue.Empty:
                _reap(processes, finished, in_hand, outcomes, by_name)
                continue
            kind, worker, payload = message
            if kind == "start":
                in_hand[payload] = worker
            elif kind == "done":
                name, plan, error, requests, secrets = payload
                sensitive.remember_forms(secrets)
                in_hand.pop(name, None)
                outcomes[name] = Outcome(by_name[name], plan, error, requests)
                progress.phase(f"planned {len(outcomes)} of {len(envs)} environments")
            elif kind == "exit":
                finished.add(worker)
    finally:
        for process in processes:
            if process.is_alive() and len(outcomes) < len(envs):
                process.terminate()
        for process in processes:
            process.join(timeout=10)
        tasks.cancel_join_thread()
    for name in by_name:
        if name not in outcomes:
            outcomes[name] = Outcome(by_name[name], error=VboplanError(
                f"environment '{name}': not planned (every worker process stopped before it)"))
    return [outcomes[env.name] for env in envs]


def _reap(processes: list[Any], finished: set[int], in_hand: dict[str, int], outcomes: dict[str, Outcome],
          by_name: dict[str, Environment]) -> None:
    """A worker that died without saying so: the environments it had in hand fail, naming why."""
    from vboplan.core import Outcome

    for index, process in enumerate(processes):
        if index in finished or process.is_alive():
            continue
        finished.add(index)
        for name in [n for n, w in in_hand.items() if w == index]:
            del in_hand[name]
            outcomes[name] = Outcome(by_name[name], error=VboplanError(
                f"environment '{name}': the worker process planning it stopped (exit code {process.exitcode})"))


# -- in the worker --------------------------------------------------------------------------------------------

def _work(settings: dict[str, Any], tasks: Any, results: Any, index: int) -> None:
    """A worker process: plan environments named on ``tasks`` until told to stop, each result sent as it is made."""
    from vboplan import sensitive
    from vboplan.core import plan_one
    from vboplan.project.config import load_project

    _setup_logging(settings["log_level"])
    project = load_project(Path(settings["root"]))
    shares: dict[str, int] = settings["shares"]
    lock = threading.Lock()

    def one_thread() -> None:
        while True:
            env = tasks.get()
            if env is None:
                return
            name = env.name
            results.put(("start", index, name))
            env = replace(env, max_in_flight=min(env.max_in_flight, shares.get(env.server, env.max_in_flight)))
            outcome = plan_one(project, env, settings["targets"], settings["allow_mass_delete"],
                               excluded=settings["excluded"], refresh_only=settings["refresh_only"])
            error = _portable(outcome.error)
            with lock:
                secrets = sensitive.remembered()
            results.put(("done", index, (name, outcome.plan, error, outcome.requests, secrets)))

    try:
        with ThreadPoolExecutor(max_workers=settings["threads"]) as pool:
            for future in [pool.submit(one_thread) for _ in range(settings["threads"])]:
                future.result()
    finally:
        results.put(("exit", index, None))


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
