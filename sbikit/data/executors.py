r"""Where blocks run: in the calling process, in a local process pool, or on any
:class:`concurrent.futures.Executor` (dask, Ray, mpi4py), with a bounded number of blocks
in flight and the results returned in block order."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import torch

START_METHOD = "spawn"
r"""The start method of the local process pool. ``fork`` copies a parent whose torch may
already run OpenMP or CUDA threads, which can deadlock the child; ``spawn`` starts each
worker from a fresh interpreter, behaves the same on Linux, macOS and Windows, and costs
one import of torch per worker, once per run."""


class InProcessExecutor(Executor):
    r"""An executor that runs each call in the calling process, when it is submitted."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


def one_thread() -> None:
    r"""Initializes a pool worker: one torch thread, so that workers do not oversubscribe
    the cores."""

    torch.set_num_threads(1)


def local_pool(workers: int) -> ProcessPoolExecutor:
    r"""A pool of ``workers`` processes started with :data:`START_METHOD`."""

    context = multiprocessing.get_context(START_METHOD)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread)


def in_order(
    executor: Executor,
    fn: Callable,
    arguments: Iterator,
    window: int,
    wanted: Callable[[int], bool],
) -> Iterator:
    r"""Yields ``fn(a)`` for the ``a`` of ``arguments``, in order, with at most ``window``
    calls in flight; a new call is submitted while ``wanted(calls in flight)`` is true.

    Calls may finish in any order; their results wait in their futures until their turn.
    Calls still pending when the generator closes are cancelled.
    """

    pending: deque[Future] = deque()
    try:
        while True:
            while len(pending) < window and wanted(len(pending)):
                pending.append(executor.submit(fn, next(arguments)))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
