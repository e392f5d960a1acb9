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

Modules: :mod:`.options` (resources and device), :mod:`.shared` (the shared-folder marker and the
start check's verdict), :mod:`.worker` (what runs on the workers), :mod:`.schedule` (one run's
submissions and retries), :mod:`.executor` (:class:`RayExecutor`).
"""

from harness.pipeline.executors.ray.executor import (
    CHECK_TIMEOUT_S,
    INSTALL_HINT,
    RayExecutor,
    check_address,
    import_ray,
)
from harness.pipeline.executors.ray.options import (
    DEFAULT_RESOURCES,
    RESOURCE_KEYS,
    describe,
    fits,
    parse_memory,
    ray_device,
    task_options,
)
from harness.pipeline.executors.ray.schedule import POLL_S
from harness.pipeline.executors.ray.shared import MARKER_PREFIX, marker_seen, node_problem, not_visible, write_marker
from harness.pipeline.executors.ray.worker import (
    PROGRESS_EVERY_S,
    PluginsFactory,
    post,
    probe_node,
    run_stage_task,
    stage_input_paths,
    worker_plugins,
)

__all__ = [
    "CHECK_TIMEOUT_S",
    "DEFAULT_RESOURCES",
    "INSTALL_HINT",
    "MARKER_PREFIX",
    "POLL_S",
    "PROGRESS_EVERY_S",
    "RESOURCE_KEYS",
    "PluginsFactory",
    "RayExecutor",
    "check_address",
    "describe",
    "fits",
    "import_ray",
    "marker_seen",
    "node_problem",
    "not_visible",
    "parse_memory",
    "post",
    "probe_node",
    "ray_device",
    "run_stage_task",
    "stage_input_paths",
    "task_options",
    "worker_plugins",
    "write_marker",
]
