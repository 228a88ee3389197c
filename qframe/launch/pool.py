"""Run plain tasks (a function of one item) in forked child processes, ``slots`` at a time.

The Hydra-job launcher (:mod:`qframe.launch.forking`) forks one child per sweep job; this runs the tasks inside one
run (a rolling study's windows) the same way, with the same primitives: each child leads its own process group and
dies with its parent (:mod:`qframe.launch.lifecycle`), sends one message back over a pipe, and a child that dies
without one (a segfault, an OOM kill, ``kill -9``) is reported with the signal. The parent has loaded what the tasks
share (features) and trained nothing, so the children inherit it copy-on-write and fork-safely.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from qframe.launch.forking import _describe_exit
from qframe.launch.lifecycle import bind_to_parent, kill_group, lead_group, signals_held


@dataclass
class Outcome:
    """A finished task: its key, whether it succeeded, its value or why it failed, and its wall time."""

    key: Any
    ok: bool
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def _child(conn: Any, function: Callable[[Any], Any], item: Any, parent_pid: int) -> None:
    bind_to_parent(parent_pid)
    try:
        message = ("ok", function(item))
    except BaseException as exc:  # noqa: BLE001 - whatever a task does wrong is the task's failure
        message = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - an unpicklable value
        conn.send(("error", f"the task's result could not be sent back: {type(exc).__name__}: {exc}"))
    conn.close()


def _finished(running: dict[Any, tuple[Any, Any, float]]) -> Iterator[Outcome]:
    """The outcomes of the tasks in ``running`` that have sent their message or died; they leave ``running``."""
    for key, (process, conn, started) in list(running.items()):
        message = None
        if conn.poll():
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
        elif process.is_alive():
            continue
        del running[key]
        conn.close()
        process.join(30)
        if process.is_alive():
            kill_group(process.pid)
            process.join(5)
        seconds = time.perf_counter() - started
        if message is None:
            yield Outcome(key, False, error=_describe_exit(process.exitcode), seconds=seconds)
        elif message[0] == "ok":
            yield Outcome(key, True, value=message[1], seconds=seconds)
        else:
            yield Outcome(key, False, error=str(message[1]), seconds=seconds)


def fork_map(
    function: Callable[[Any], Any], items: Iterable[tuple[Any, Any]], slots: int = 1, poll: float = 0.5
) -> Iterator[Outcome]:
    """``function(item)`` for each ``(key, item)`` in a forked child, at most ``slots`` at once; outcomes are
    yielded as they finish. Closing the iterator early (the caller stops at a failure) kills what still runs."""
    ctx = multiprocessing.get_context("fork")
    pending = list(items)
    running: dict[Any, tuple[Any, Any, float]] = {}  # key -> (process, connection, start)

    def start() -> None:
        while pending and len(running) < max(1, slots):
            key, item = pending.pop(0)
            parent_conn, child_conn = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_child, args=(child_conn, function, item, os.getpid()), daemon=False)
            gc.freeze()  # the child's collector would otherwise touch (copy) every page of the parent's objects
            with signals_held():
                process.start()
                lead_group(process.pid)
            child_conn.close()
            running[key] = (process, parent_conn, time.perf_counter())

    try:
        while pending or running:
            start()
            waitables = [w for p, c, _ in running.values() for w in (p.sentinel, c)]
            multiprocessing.connection.wait(waitables, timeout=poll)
            finished = list(_finished(running))
            if all(outcome.ok for outcome in finished):
                # the next tasks start before the caller handles these outcomes (keeps and records them), so its
                # work overlaps theirs; after a failure the caller may stop: nothing more starts before it has seen it
                start()
            yield from finished
    finally:
        for process, conn, _ in running.values():
            kill_group(process.pid)
            process.join(5)
            conn.close()
