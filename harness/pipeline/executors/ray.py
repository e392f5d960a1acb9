"""Run the stage graph on a Ray cluster: every stage is a Ray task with the resources it declares.

The tasks call the same :func:`harness.pipeline.execute.execute_stage` as the local executor; only the
scheduling differs. A stage is submitted as soon as its inputs are done, so independent cells of
the product run in parallel. The output folder must be one path that every node sees (a shared
file system): at start the driver writes a marker file there and a tiny task on every node that
could run a stage reads it back, and each task checks the marker again before it writes anything.
Only the driver writes the results store, from the :class:`~harness.pipeline.execute.Outcome` each task
returns. A task whose worker dies (node lost, process killed, out of memory) is submitted again up
to ``max_retries`` times and resumes from the stage's mid-stage checkpoint in ``<output>/.work``.

Ray is optional (``pip install '.[ray]'``): it is imported when a :class:`RayExecutor` is made.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, PluginError
from harness.core.params import input_paths
from harness.core.plan import PLUGIN_KINDS, Stage
from harness.core.registry import PluginManager, default_manager
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.base import Executor, ProgressFn, StartFn

log = logging.getLogger("harness.pipeline.executors.ray")

PluginsFactory = Callable[[], PluginManager]

RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
DEFAULT_RESOURCES: dict[str, float] = {"num_cpus": 1.0, "num_gpus": 0.0}
MARKER_PREFIX = ".ray-visible-"
CHECK_TIMEOUT_S = 120.0
POLL_S = 0.2
PROGRESS_EVERY_S = 0.5
INSTALL_HINT = "pip install '.[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a HarnessError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise HarnessError(f"the ray executor needs Ray, which is not installed; install it with "
                           f"`{INSTALL_HINT}` (or `pip install 'ray[default]'`) on the driver and every node."
                           ) from exc
    return ray


def check_address(address: str) -> None:
    """Fail at once where nothing listens at a ``host:port`` address (Ray itself retries for minutes)."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():  # "auto" and the like: Ray resolves them
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except OSError as exc:
        raise HarnessError(f"nothing answers at the Ray address {address} ({exc.strerror or exc}); start the head "
                           "node with `ray start --head` and pass the address it prints.") from exc


# ---------------------------------------------------------------------- resources


# A few lines instead of a dependency: Ray takes memory in bytes, recipes read better with units.
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory(value: Any, where: str) -> int:
    """Bytes from a number of bytes or a string such as ``"16GB"``, ``"512 MiB"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None:
        raise HarnessError(f"{where} is {value!r}, not an amount of memory; write bytes or a size such as "
                           "16GB or 512MiB.")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def task_options(stage: Stage) -> dict[str, Any]:
    """Ray resource options of a stage: what the recipe declares for its kind over 1 CPU and no GPU."""
    where = f"resources.{stage.kind}"
    unknown = sorted(set(stage.resources) - set(RESOURCE_KEYS))
    if unknown:
        raise HarnessError(f"{where}.{unknown[0]} is not a resource the ray executor schedules by; "
                           f"use {', '.join(RESOURCE_KEYS)}.")
    options: dict[str, Any] = dict(DEFAULT_RESOURCES)
    for key, unit in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if key not in stage.resources:
            continue
        value = stage.resources[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise HarnessError(f"{where}.{key} is {value!r}; give a number of {unit}s (0 or more).")
        if value > 1 and value != int(value):
            raise HarnessError(f"{where}.{key} is {value}; above 1 it must be a whole number (Ray shares only "
                               "a single device between tasks).")
        options[key] = float(value)
    if "memory" in stage.resources:
        options["memory"] = parse_memory(stage.resources["memory"], f"{where}.memory")
    return options


def fits(options: dict[str, Any], node_resources: dict[str, float]) -> bool:
    """Whether one node has the resources a task asks for."""
    return (node_resources.get("CPU", 0.0) >= options["num_cpus"]
            and node_resources.get("GPU", 0.0) >= options["num_gpus"]
            and node_resources.get("memory", 0.0) >= options.get("memory", 0))


def describe(options: dict[str, Any]) -> str:
    parts = [f"{options['num_cpus']:g} CPU", f"{options['num_gpus']:g} GPU"]
    if "memory" in options:
        parts.append(f"{options['memory'] / 2**30:.1f} GiB memory")
    return ", ".join(parts)


# ---------------------------------------------------------------------- what runs on the workers


def write_marker(output: Path) -> tuple[Path, str]:
    """The driver's marker file in the output folder: a fresh token workers must read back."""
    token = secrets.token_hex(16)
    path = Path(output) / f"{MARKER_PREFIX}{token}"
    with open(path, "w") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    return path, token


def marker_seen(marker: str, token: str) -> bool:
    try:
        return Path(marker).read_text() == token
    except OSError:
        return False


def not_visible(output: str, hosts: list[str]) -> str:
    return (f"the output folder {output} is not visible from Ray node(s) {', '.join(hosts)} (they cannot read "
            f"the marker file the driver wrote there); put the output on a file system every node mounts at the "
            f"same path (NFS, Lustre, a cloud file store) and set the recipe's output to that path.")


_MANAGERS: dict[PluginsFactory, PluginManager] = {}


def worker_plugins(plugins_factory: PluginsFactory) -> PluginManager:
    """The plugin manager of this worker process, built once per factory (Ray reuses worker processes)."""
    if plugins_factory not in _MANAGERS:
        _MANAGERS[plugins_factory] = plugins_factory()
    return _MANAGERS[plugins_factory]


def probe_node(marker: str, token: str, plugins_factory: PluginsFactory, stages: list[Stage],
               hide_gpus: bool = False) -> dict[str, Any]:
    """Runs on one node at start: does it see the marker and the stages' input paths, which versions of the
    stages' plugins does it have. ``hide_gpus`` as in :func:`run_stage_task` (Ray may reuse this worker)."""
    if hide_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    report: dict[str, Any] = {"host": socket.gethostname(), "seen": marker_seen(marker, token), "versions": {},
                              "missing": {}, "error": None}
    if not report["seen"]:
        return report
    try:
        manager = worker_plugins(plugins_factory)
    except Exception as exc:  # reported to the driver as one line
        report["error"] = f"{type(exc).__name__}: {exc}"
        return report
    for kind, name in sorted({(PLUGIN_KINDS[s.kind], s.plugin) for s in stages if s.kind in PLUGIN_KINDS}):
        try:
            info = manager.get(kind, name)
            report["versions"][f"{kind}:{name}"] = f"{info.version}@{info.origin}"
        except PluginError:
            report["versions"][f"{kind}:{name}"] = None
    report["missing"] = {p: what for p, what in stage_input_paths(stages, manager).items() if not Path(p).exists()}
    return report


def stage_input_paths(stages: list[Stage], plugins: PluginManager) -> dict[str, str]:
    """The user's paths (corpus roots, checkpoints) the stages read, each with the parameter that names it.

    A stage whose plugin is missing or different here is skipped: the version check reports it.
    """
    out: dict[str, str] = {}
    for stage in stages:
        if stage.kind not in PLUGIN_KINDS:
            continue
        try:
            cls = plugins.get(PLUGIN_KINDS[stage.kind], stage.plugin).cls
            fields = cls.Params.model_fields
            params = cls.Params.model_validate({k: v for k, v in stage.params.items() if k in fields})
        except Exception as exc:
            log.debug("no input paths for %s: %s", stage.key, exc)
            continue
        for name, path in input_paths(params).items():
            out.setdefault(str(path), f"{stage.kind} {stage.plugin} {name}")
    return out


def post(events: Any, event: tuple) -> None:
    """Send a start or progress event to the driver; progress is a nicety, so a lost queue never fails a stage."""
    try:
        events.put_nowait(event)
    except Exception as exc:
        log.debug("progress event dropped: %s", exc)


class _Reporter:
    """A stage's on_progress inside the worker: posts to the driver's queue at most every PROGRESS_EVERY_S."""

    def __init__(self, events: Any, key: str):
        self.events = events
        self.key = key
        self.last = 0.0

    def __call__(self, step: int, total: int, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and not (total and step >= total):
            return
        self.last = now
        post(self.events, ("progress", self.key, step, total, dict(info)))


def run_stage_task(stage: Stage, output: str, marker: str, token: str, plugins_factory: PluginsFactory,
                   events: Any, hide_gpus: bool = False) -> Outcome:
    """The body of a stage's Ray task: check the shared folder, then the same execute_stage as locally.

    ``hide_gpus``: the stage declared no GPU, so it runs on the CPU (recent Ray leaves every GPU visible
    to such a task, and the stage would otherwise use one that Ray never gave it).
    """
    if hide_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    host = socket.gethostname()
    if not marker_seen(marker, token):
        now = time.time()
        return Outcome(stage.key, "failed", now, now, host, error=not_visible(output, [host]), user_error=True)
    post(events, ("start", stage.key, host, os.getpid()))
    try:
        plugins = worker_plugins(plugins_factory)
    except Exception as exc:
        now = time.time()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
        return Outcome(stage.key, "failed", now, now, host, user_error=isinstance(exc, HarnessError),
                       error=f"the plugins could not be loaded on {host} ({type(exc).__name__}: {exc})\n{detail}")
    return execute_stage(stage, output, _Reporter(events, stage.key), plugins)


def node_problem(report: dict[str, Any], wanted: dict[tuple[str, str], str]) -> str | None:
    """What keeps a node that sees the output folder from running the stages, as one sentence, or None."""
    host = report["host"]
    if report["error"]:
        return (f"the plugins could not be loaded on Ray node {host} ({report['error']}); install the project and "
                "its plugins on every node.")
    for (kind, name), version in sorted(wanted.items()):
        got = report["versions"].get(f"{kind}:{name}")
        if got != version:
            return (f"Ray node {host} has {kind} plugin {name!r} {'version ' + got if got else 'not installed'}, "
                    f"but the driver planned with version {version}; install the same packages on every node.")
    if report["missing"]:
        listing = "; ".join(f"{what} -> {path}" for path, what in sorted(report["missing"].items()))
        return (f"Ray node {host} cannot see {len(report['missing'])} input path(s) of the recipe ({listing}); "
                "put corpora and checkpoints on a file system every node mounts at the same path.")
    return None


# ---------------------------------------------------------------------- the executor


class RayExecutor(Executor):
    """Stages as Ray tasks on a local Ray instance (no address) or an existing cluster.

    ``max_retries``: how many times a stage whose worker died is submitted again (it resumes from
    its checkpoint). ``plugins_factory``: a picklable function that builds the plugin manager in
    each worker (the installed entry points by default). ``num_cpus`` and ``init_options`` apply
    only when this executor starts Ray itself; a Ray already initialised in this process is used
    as it is and left running.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3,
                 plugins_factory: PluginsFactory = default_manager, init_options: dict[str, Any] | None = None):
        if max_retries < 0:
            raise HarnessError(f"max_retries is {max_retries}; give 0 or more.")
        self.ray = import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.plugins_factory = plugins_factory
        self.init_options = dict(init_options or {})

    # ------------------------------------------------------------------ connecting and checking

    def _connect(self) -> bool:
        """Connect to the cluster or start a local instance; True when this call did it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        try:
            if self.address:
                check_address(self.address)
                ray.init(address=self.address, **self.init_options)
            else:  # "local": a new instance even where a cluster runs on this machine (--address auto joins it)
                ray.init(address="local", num_cpus=self.num_cpus, **self.init_options)
        except HarnessError:
            raise
        except Exception as exc:
            if self.address:
                raise HarnessError(f"could not connect to the Ray cluster at {self.address} ({exc}); start one "
                                   "with `ray start --head` and pass the address it prints.") from exc
            raise HarnessError(f"could not start a local Ray instance ({exc}); pass --address of a running "
                               "cluster instead.") from exc
        return True

    def _nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _check_feasible(self, stages: list[Stage], options: dict[str, dict[str, Any]], local: bool) -> None:
        """A stage no node can hold would wait forever: an error on a local instance, a warning on a cluster."""
        nodes = self._nodes()
        for stage in stages:
            if any(fits(options[stage.key], n["Resources"]) for n in nodes):
                continue
            have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
                             f"{n['Resources'].get('GPU', 0):g} GPU" for n in nodes)
            message = (f"the {stage.kind} stage {stage.title!r} asks for {describe(options[stage.key])} but no "
                       f"Ray node has that much ({have})")
            if local:
                raise HarnessError(f"{message}; lower `resources: {{{stage.kind}: ...}}` in the recipe or run on a "
                                   "cluster that has such a node (--address).")
            log.warning("%s; it waits until such a node joins the cluster.", message)

    def _check_nodes(self, stages: list[Stage], options: dict[str, dict[str, Any]], output: Path, marker: Path,
                     token: str) -> None:
        """Every node that could run a stage sees the output folder and the inputs, and has the planned plugins."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in self._nodes() if any(fits(o, n["Resources"]) for o in options.values())]
        wanted = {(PLUGIN_KINDS[s.kind], s.plugin): s.version for s in stages if s.kind in PLUGIN_KINDS}
        probe = ray.remote(probe_node)
        refs = {probe.options(num_cpus=0, max_retries=0, name="harness node check",
                              scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(marker), token, self.plugins_factory, stages, True): n for n in nodes}
        if not refs:
            return
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
        if late:
            for ref in late:
                ray.cancel(ref, force=True)
            names = ", ".join(refs[r]["NodeManagerAddress"] for r in late)
            raise HarnessError(f"Ray node(s) {names} did not answer the start check within "
                               f"{CHECK_TIMEOUT_S:.0f} s; check `ray status` and the nodes' logs.")
        reports = []
        for ref in ready:
            try:
                reports.append(ray.get(ref))
            except ray.exceptions.RayError as exc:
                raise HarnessError(f"the start check failed on Ray node {refs[ref]['NodeManagerAddress']} "
                                   f"({str(exc).splitlines()[0]}); check that node's Python environment.") from exc
        blind = [f"{r['host']} ({refs[ref]['NodeManagerAddress']})" for ref, r in zip(ready, reports) if not r["seen"]]
        if blind:
            raise HarnessError(not_visible(str(output), blind))
        for report in reports:
            problem = node_problem(report, wanted)
            if problem:
                raise HarnessError(problem)

    # ------------------------------------------------------------------ running

    def execute(self, stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        if not stages:
            return
        output = Path(output).resolve()  # workers may start in another directory
        options = {s.key: task_options(s) for s in stages}  # bad resources fail before anything starts
        started_here = self._connect()
        try:
            self._check_feasible(stages, options, local=started_here and not self.address)
            marker, token = write_marker(output)
            try:
                self._check_nodes(stages, options, output, marker, token)
                _Schedule(self, stages, done, output, options, str(marker), token).run(on_start, on_finish,
                                                                                       on_progress)
            finally:
                marker.unlink(missing_ok=True)
        finally:
            if started_here:
                self.ray.shutdown()


@dataclass
class _Task:
    stage: Stage
    attempt: int
    submitted: float
    deaths: list[str] = field(default_factory=list)


class _Schedule:
    """One execute() call: submits stages whose inputs are done, collects outcomes, retries dead workers."""

    def __init__(self, executor: RayExecutor, stages: list[Stage], done: set[str], output: Path,
                 options: dict[str, dict[str, Any]], marker: str, token: str):
        from ray.util.queue import Queue

        self.ex = executor
        self.ray = executor.ray
        self.pending = list(stages)
        self.by_key = {s.key: s for s in stages}
        self.finished = set(done)
        self.output = str(output)
        self.options = options
        self.marker = marker
        self.token = token
        self.inflight: dict[Any, _Task] = {}
        self.announced: set[str] = set()  # on_start called
        self.closed: set[str] = set()  # on_finish called
        self.hosts: dict[str, str] = {}
        self.remote = self.ray.remote(run_stage_task)
        # a GPU stage's worker exits after it, so the next GPU stage never finds CUDA set up for another device
        # (Ray applies max_calls only where the function is declared, not in .options())
        self.remote_gpu = self.ray.remote(max_calls=1)(run_stage_task)
        self.events = Queue(actor_options={"num_cpus": 0})  # the workers' start and progress events
        self.events_ok = True

    def submit(self, stage: Stage, attempt: int = 1, deaths: list[str] | None = None,
               submitted: float | None = None) -> None:
        options = self.options[stage.key]
        remote = self.remote_gpu if options["num_gpus"] > 0 else self.remote
        ref = remote.options(**options, max_retries=0, retry_exceptions=False,
                             name=f"{stage.kind} {stage.key[:10]}").remote(
            stage, self.output, self.marker, self.token, self.ex.plugins_factory, self.events, options["num_gpus"] == 0)
        self.inflight[ref] = _Task(stage, attempt, submitted or time.time(), list(deaths or []))

    def run(self, on_start: StartFn, on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        ray = self.ray
        submitting = True
        try:
            while True:
                if submitting:
                    for stage in [s for s in self.pending if set(s.inputs.values()) <= self.finished]:
                        self.pending.remove(stage)
                        self.submit(stage)
                if not self.inflight:
                    return
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=POLL_S)
                self.drain(on_start, on_progress)
                for ref in ready:
                    task = self.inflight.pop(ref)
                    outcome = self.result(ref, task)
                    if outcome is None:  # submitted again after its worker died
                        continue
                    stage = task.stage
                    if stage.key not in self.announced:  # it finished before its start event arrived
                        self.announced.add(stage.key)
                        on_start(stage)
                    self.closed.add(stage.key)
                    log.debug("%s: %s on %s in %.1f s", stage.title, outcome.status, outcome.host or "?",
                             outcome.duration)
                    if outcome.status == "done":
                        self.finished.add(stage.key)
                    if not on_finish(stage, outcome):
                        submitting = False  # let the running ones finish; start nothing new
        except BaseException:  # Ctrl-C or a failing callback: nothing keeps running for a driver that left
            for ref in self.inflight:
                try:
                    ray.cancel(ref, force=True)
                except Exception as exc:  # already finished, or its node is gone
                    log.debug("cancel failed: %s", exc)
            raise
        finally:
            try:
                self.events.shutdown(force=True)
            except Exception as exc:
                log.debug("event queue already gone: %s", exc)

    def drain(self, on_start: StartFn, on_progress: ProgressFn) -> None:
        """Forward the workers' start and progress events to the driver, with where each stage runs."""
        if not self.events_ok:
            return
        try:
            size = self.events.size()
            events = self.events.get_nowait_batch(size) if size else []
        except self.ray.exceptions.RayError as exc:  # progress is a nicety; the run goes on without it
            log.warning("stage progress is no longer shown (%s)", str(exc).splitlines()[0])
            self.events_ok = False
            return
        for event in events:
            key = event[1]
            stage = self.by_key.get(key)
            if stage is None or key in self.closed:
                continue
            if event[0] == "start":
                self.hosts[key] = event[2]
                if key not in self.announced:
                    self.announced.add(key)
                    on_start(stage)
                on_progress(stage, 0, 0, {"on": event[2]})
            else:
                _, _, step, total, info = event
                on_progress(stage, step, total, {"on": self.hosts.get(key, "?"), **info})

    def result(self, ref: Any, task: _Task) -> Outcome | None:
        """The task's Outcome; None when it was submitted again; a failed Outcome when Ray could not run it."""
        errors = self.ray.exceptions
        stage = task.stage
        died = (errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError, errors.ObjectLostError,
                errors.LocalRayletDiedError)
        try:
            outcome: Outcome = self.ray.get(ref)
        except died as exc:
            where = self.hosts.get(stage.key, "an unknown node")
            task.deaths.append(f"attempt {task.attempt} died on {where} ({type(exc).__name__})")
            if task.attempt <= self.ex.max_retries:
                log.warning("%s: the worker died (%s); retry %d of %d resumes from its checkpoint",
                            stage.title, type(exc).__name__, task.attempt, self.ex.max_retries)
                self.submit(stage, task.attempt + 1, task.deaths, task.submitted)
                return None
            return Outcome(stage.key, "failed", task.submitted, time.time(), self.hosts.get(stage.key, ""),
                           messages=task.deaths,
                           error=f"the worker running this stage died {len(task.deaths)} time(s), the last time "
                                 f"with {type(exc).__name__}: {str(exc).splitlines()[0]}; its checkpoint is kept, "
                                 "so a rerun resumes it.")
        except errors.RayError as exc:  # the task could not run at all (its environment, a cancel, ...)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HarnessError):
                error, user = str(cause), True
            else:
                error, user = f"{type(cause or exc).__name__}: {cause or exc}", False
            return Outcome(stage.key, "failed", task.submitted, time.time(), self.hosts.get(stage.key, ""),
                           messages=task.deaths, error=error, user_error=user)
        if task.deaths:
            outcome.messages = [*task.deaths, *outcome.messages]
        return outcome
