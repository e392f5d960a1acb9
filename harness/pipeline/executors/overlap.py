"""Independent stages at once on one machine, each in a worker process of its own.

Processes, not threads: :func:`~harness.pipeline.execute.execute_stage` seeds the global random
generators (Python, NumPy, torch) at the start of a stage and the stage draws from them as it runs;
two stages on threads of one process would interleave their draws and their results would depend
on timing. A spawned worker process has its own generators, so a stage gives the same artifacts as
in a sequential run. Workers are started with ``spawn`` (no copy of the driver's threads or CUDA
state) and reused from stage to stage.

Resources: at most ``jobs`` stages run at once; each worker runs torch on as many threads as a
sequential run gives a stage (see :func:`worker_threads`); when the device is CUDA, at most
``gpu_jobs`` stages whose kind uses the accelerator run at once (default one: a stage holds the GPU;
more let small models' stages share it, each worker with its own CUDA memory); evaluate stages
that share a feature cache (one model on one corpus) fill it one after the other, in plan order: each
starts once those before it have said they will add nothing more to it (a probe, once its features are
there; ABX, once both of its item files' are), and then they train side by side (:func:`admits`).
The driver alone starts stages, hears their progress (a queue the workers write to) and receives
their outcomes, so it alone writes the results store.

Order: of the stages ready to start, those the most other stages wait on go first (:func:`by_dependents`),
so a model's fine-tuning starts before the evaluations of models that are already there, and what the
fine-tuned models need next is not left waiting behind work nothing waits on.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from harness.core.plan import Stage
from harness.core.registry import PluginManager
from harness.core.stage_kinds import ACCELERATOR_KINDS
from harness.core.threads import available_cores, passive_openmp_waits
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.base import ProgressFn, StartFn
from harness.pipeline.executors.cache_turns import CacheTurns, feature_cache

_progress_queue: Any = None  # the worker's end of the driver's progress queue


def _init_worker(progress: Any, threads: int) -> None:
    global _progress_queue
    import torch

    _progress_queue = progress
    torch.set_num_threads(threads)


#: what a worker puts on the progress queue, in place of a step, when its stage has filled its feature cache
CACHE_FILLED = "cache filled"


def _run_stage(stage: Stage, output: Path, plugins: PluginManager | None, device: Any) -> Outcome:
    def report(step: int, total: int, info: dict[str, Any]) -> None:
        _progress_queue.put((stage.key, step, total, info))

    def filled() -> None:
        _progress_queue.put((stage.key, CACHE_FILLED, 0, {}))

    return execute_stage(stage, output, report, plugins, device=device, on_cache_filled=filled)


def admits(stage: Stage, running: Iterable[Stage], accelerator_slots: int | None,
           cache_ready: Callable[[Stage], bool]) -> bool:
    """Whether ``stage`` (its inputs finished) may start beside the ``running`` stages: it is its turn on
    its feature cache (``cache_ready``, :meth:`CacheTurns.ready`), and with ``accelerator_slots`` (a CUDA
    device) fewer than that many stages on the accelerator run when ``stage`` would join them."""
    running = list(running)
    if not cache_ready(stage):
        return False
    if accelerator_slots is not None and stage.kind in ACCELERATOR_KINDS:
        return sum(s.kind in ACCELERATOR_KINDS for s in running) < accelerator_slots
    return True


def by_dependents(stages: list[Stage]) -> list[Stage]:
    """``stages`` (dependency order) by how many of them wait on each, directly or not (most first),
    keeping their order among equals. A stage sharing a feature cache with another keeps its place
    after it: they fill the cache in plan order (see :mod:`harness.pipeline.executors.cache_turns`)."""
    children: dict[str, list[str]] = {s.key: [] for s in stages}
    for s in stages:
        for key in set(s.inputs.values()) & children.keys():
            children[key].append(s.key)
    below: dict[str, set[str]] = {}
    for s in reversed(stages):  # inputs come first, so a stage's dependents are counted before it
        below[s.key] = set().union(*([{c} | below[c] for c in children[s.key]] or [set()]))
    order = sorted(range(len(stages)), key=lambda i: -len(below[stages[i].key]))
    ranked = [stages[i] for i in order]
    # stages of one feature cache take the places their group holds, in plan order
    groups: dict[tuple[str, str], list[Stage]] = {}
    for s in stages:
        if (cache := feature_cache(s)) is not None:
            groups.setdefault(cache, []).append(s)
    taken = {cache: iter(members) for cache, members in groups.items()}
    return [next(taken[c]) if (c := feature_cache(s)) is not None else s for s in ranked]


def worker_threads() -> int:
    """Torch threads of each concurrent stage, however many run: as many as a sequential run gives.

    Not the cores shared out: a matrix product's sums are split by thread, so a stage on fewer threads
    rounds differently, and a fine-tuning run drifts from the sequential one (measured on the demo:
    PER 46.86 against 46.82, slot F1 22.9 against 24.0). The cores are oversubscribed instead;
    the small stages this overlaps use few threads well anyway (the demo on 2 cores: 401 s sequential,
    274 s with ``--jobs 2`` either way).
    """
    return available_cores()


def run_overlapped(stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                   on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn, *, jobs: int,
                   plugins: PluginManager | None, device: Any, gpu_jobs: int = 1) -> None:
    """Run ``stages`` (dependency order) up to ``jobs`` at a time, at most ``gpu_jobs`` of them on a CUDA
    device; stages whose inputs failed never start."""
    finished = set(done)
    dead: set[str] = set()  # failed, or blocked behind a failure
    slots = gpu_jobs if getattr(device, "type", "cpu") == "cuda" else None
    by_key = {s.key: s for s in stages}
    pending = by_dependents(stages)
    running: dict[Future, Stage] = {}
    turns = CacheTurns(stages, done)
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()
    stopping = False

    def drain() -> None:
        while True:
            try:
                key, step, total, info = progress.get_nowait()
            except queue.Empty:
                return
            if step == CACHE_FILLED:
                turns.mark_filled(key)
            elif key in by_key:
                on_progress(by_key[key], step, total, info)

    with passive_openmp_waits(), ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                                     initargs=(progress, worker_threads())) as pool:
        try:
            while pending or running:
                for stage in list(pending):
                    if stopping or len(running) >= jobs:
                        break
                    inputs = set(stage.inputs.values())
                    if inputs & dead:
                        pending.remove(stage)  # never started: the driver reports it as blocked
                        dead.add(stage.key)
                        turns.mark_filled(stage.key)
                        continue
                    if not inputs <= finished or not admits(stage, running.values(), slots, turns.ready):
                        continue
                    pending.remove(stage)
                    on_start(stage)
                    running[pool.submit(_run_stage, stage, output, plugins, device)] = stage
                if not running:
                    return  # what is left waits on stages that will not finish
                completed, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for future in completed:
                    stage = running.pop(future)
                    turns.mark_filled(stage.key)  # ended, whatever its outcome: it adds nothing more
                    try:
                        outcome = future.result()
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        now = time.time()
                        outcome = Outcome(stage.key, "failed", now, now, "",
                                          error=f"the worker process running this stage died ({exc}); run again")
                        stopping = True  # the pool is broken: nothing more can start
                    if outcome.status == "done":
                        finished.add(stage.key)
                    else:
                        dead.add(stage.key)
                    if not on_finish(stage, outcome):
                        stopping = True
                if stopping:
                    pending.clear()  # let the running stages finish and be recorded, start nothing new
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            drain()
