"""The Ray executor: connect to Ray, check the nodes, then hand the stages to a schedule."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.plan import Stage
from harness.core.registry import default_manager
from harness.core.stage_kinds import PLUGIN_KINDS
from harness.pipeline.execute import Outcome
from harness.pipeline.executors.base import Executor, ProgressFn, StartFn
from harness.pipeline.executors.ray.options import describe, fits, ray_device, task_options
from harness.pipeline.executors.ray.schedule import Schedule
from harness.pipeline.executors.ray.shared import node_problem, not_visible, write_marker
from harness.pipeline.executors.ray.worker import PluginsFactory, probe_node

log = logging.getLogger("harness.pipeline.executors.ray")

CHECK_TIMEOUT_S = 120.0
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


class RayExecutor(Executor):
    """Stages as Ray tasks on a local Ray instance (no address) or an existing cluster.

    ``max_retries``: how many times a stage whose worker died is submitted again (it resumes from
    its checkpoint). ``plugins_factory``: a picklable function that builds the plugin manager in
    each worker (the installed entry points by default). ``num_cpus`` and ``init_options`` apply
    only when this executor starts Ray itself; a Ray already initialised in this process is used
    as it is and left running. ``device``: the ``--device`` value (:func:`ray_device`); a stage that
    declares no GPU runs on the CPU whatever it says.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3,
                 plugins_factory: PluginsFactory = default_manager, init_options: dict[str, Any] | None = None,
                 device: str = "auto"):
        if max_retries < 0:
            raise HarnessError(f"max_retries is {max_retries}; give 0 or more.")
        self.device = ray_device(device)
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
                Schedule(self, stages, done, output, options, str(marker), token).run(on_start, on_finish,
                                                                                       on_progress)
            finally:
                marker.unlink(missing_ok=True)
        finally:
            if started_here:
                self.ray.shutdown()
