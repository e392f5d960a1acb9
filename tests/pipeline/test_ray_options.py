"""The Ray executor's parts that need no Ray instance: the install hint, resources, the worker-side task body."""

from __future__ import annotations

import argparse
import socket
import sys

import pytest

from harness.cli.run_cmd import make_executor
from harness.core.errors import HarnessError
from harness.core.plan import Stage, build_plan
from harness.core.recipe import load_recipe
from harness.pipeline.executors import ray as ray_executor
from harness.pipeline.executors.ray import (
    check_address,
    fits,
    parse_memory,
    probe_node,
    run_stage_task,
    task_options,
    write_marker,
)
from tests.core_helpers import TOY_RECIPE, write_recipe
from tests.ray_helpers import toy_only_manager
from tests.toy_plugins import ToyUpstream


class Events:
    """Stands in for the driver's event queue."""

    def __init__(self):
        self.posted: list[tuple] = []

    def put_nowait(self, event: tuple) -> None:
        self.posted.append(event)


def stage(kind: str = "finetune", **resources) -> Stage:
    return Stage("k" * 16, kind, "toy_ft", "1@toy-tests", {}, {}, 0, {}, resources)


@pytest.fixture
def upstream_stage(tmp_path) -> Stage:
    manager = toy_only_manager()
    plan = build_plan(load_recipe(write_recipe(tmp_path, TOY_RECIPE), manager), manager)
    return next(s for s in plan.stages.values() if s.kind == "upstream")


def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(HarnessError, match=r"^the ray executor needs Ray, which is not installed; install it "
                                           r"with `pip install '\.\[ray\]'`"):
        make_executor(argparse.Namespace(executor="ray", address=None, num_cpus=None, max_retries=3))


def test_stages_ask_for_one_cpu_and_no_gpu_unless_the_recipe_says_otherwise():
    assert task_options(stage()) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert task_options(stage(num_gpus=1, num_cpus=4, memory="16GB")) == {"num_cpus": 4.0, "num_gpus": 1.0,
                                                                          "memory": 16_000_000_000}
    assert task_options(stage(num_gpus=0.25))["num_gpus"] == 0.25
    assert parse_memory("512 MiB", "x") == 512 * 2**20
    assert parse_memory("1.5gi", "x") == 3 * 2**29
    assert parse_memory(2048, "x") == 2048


@pytest.mark.parametrize("resources, message", [
    ({"gpus": 1}, "resources.finetune.gpus is not a resource the ray executor schedules by; use num_cpus, "
                  "num_gpus, memory."),
    ({"num_gpus": 1.5}, "resources.finetune.num_gpus is 1.5; above 1 it must be a whole number"),
    ({"num_cpus": -1}, "resources.finetune.num_cpus is -1; give a number of CPUs (0 or more)."),
    ({"num_gpus": "one"}, "resources.finetune.num_gpus is 'one'; give a number of GPUs (0 or more)."),
    ({"memory": "lots"}, "resources.finetune.memory is 'lots', not an amount of memory; write bytes or a size"),
])
def test_bad_resources_name_the_recipe_key(resources, message):
    with pytest.raises(HarnessError) as info:
        task_options(stage(**resources))
    assert str(info.value).startswith(message)


def test_a_node_fits_a_stage_when_it_has_every_resource_the_stage_asks_for():
    gpu_stage = task_options(stage(num_gpus=1, memory="8GB"))
    assert fits(gpu_stage, {"CPU": 8, "GPU": 2, "memory": 64e9})
    assert not fits(gpu_stage, {"CPU": 8, "memory": 64e9})
    assert not fits(gpu_stage, {"CPU": 8, "GPU": 1, "memory": 4e9})
    assert not fits(task_options(stage(num_cpus=4)), {"CPU": 2})


def test_a_worker_that_cannot_see_the_output_folder_writes_nothing(tmp_path, upstream_stage):
    events = Events()
    output = tmp_path / "out"  # the driver's folder, absent on this "node"
    outcome = run_stage_task(upstream_stage, str(output), str(output / ".ray-visible-x"), "x", toy_only_manager,
                             events)
    assert outcome.status == "failed" and outcome.user_error
    assert outcome.error.startswith(f"the output folder {output} is not visible from Ray node(s) ")
    assert not output.exists() and events.posted == []


def test_the_task_body_runs_the_same_stage_function_and_reports_where(tmp_path, upstream_stage):
    output = tmp_path / "out"
    output.mkdir()
    marker, token = write_marker(output)
    events = Events()
    outcome = run_stage_task(upstream_stage, str(output), str(marker), token, toy_only_manager, events)
    assert outcome.status == "done"
    assert (output / upstream_stage.key / "model.safetensors").is_file()
    assert events.posted[0][:3] == ("start", upstream_stage.key, outcome.host)


def test_the_start_probe_reports_the_marker_input_paths_and_plugin_versions(tmp_path, upstream_stage):
    marker, token = write_marker(tmp_path)
    elsewhere = Stage("e" * 16, "upstream", "toy_up", "1", {"width": 4, "checkpoint": str(tmp_path / "absent.pt")},
                      {}, 0)
    unknown = Stage("u" * 16, "evaluate", "nope", "1", {}, {}, 0)
    report = probe_node(str(marker), token, toy_only_manager, [upstream_stage, elsewhere, unknown])
    assert report["seen"] and report["error"] is None
    assert report["versions"] == {"upstream:toy_up": f"{ToyUpstream.version}@toy-tests", "downstream:nope": None}
    assert report["missing"] == {str(tmp_path / "absent.pt"): "upstream toy_up checkpoint"}
    assert not probe_node(str(marker), "another token", toy_only_manager, [upstream_stage])["seen"]
    assert marker.name.startswith(ray_executor.MARKER_PREFIX)


def test_an_address_where_nothing_listens_fails_at_once_instead_of_after_minutes_of_retries():
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HarnessError, match=rf"^nothing answers at the Ray address 127\.0\.0\.1:{port} \(.*\); "
                                           r"start the head node with `ray start --head`"):
        check_address(f"127.0.0.1:{port}")
    check_address("auto")  # resolved by Ray itself
