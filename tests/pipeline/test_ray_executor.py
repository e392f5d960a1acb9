"""The Ray executor on one local Ray instance: same results as locally, parallel stages, declared
resources, a killed worker retried from its checkpoint, Ctrl-C, the shared-folder check."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed; `pip install '.[ray]'` runs these tests")

import harness.pipeline.executors.ray as ray_executor  # noqa: E402
from harness.core.errors import HarnessError  # noqa: E402
from harness.core.plan import Stage, build_plan  # noqa: E402
from harness.core.recipe import load_recipe  # noqa: E402
from harness.core.store import Store  # noqa: E402
from harness.pipeline.executors.local import LocalExecutor  # noqa: E402
from harness.pipeline.executors.ray import RayExecutor  # noqa: E402
from harness.pipeline.run import run_plan  # noqa: E402
from tests.cache_turn_helpers import assert_filled_in_turn_then_side_by_side, timed_fill_recipe  # noqa: E402
from tests.core_helpers import TOY_RECIPE, write_recipe  # noqa: E402
from tests.ray_helpers import no_plugins_manager, toy_only_manager  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# Two independent fine-tunings of 6 steps × 1 s (a checkpoint after each step), merges, evaluations, scores.
RECIPE = TOY_RECIPE.replace(
    "  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}\n",
    "  ft: {{plugin: toy_ft, corpus: nums, steps: 6, sleep: 1.0}}\n"
    "  ft2: {{plugin: toy_ft, corpus: nums, steps: 6, sleep: 1.0, lr: 0.2}}\n",
).replace("alpha: [0.0, 0.25, 1.0]", "alpha: [0.25, 1.0]")
assert "ft2:" in RECIPE and "alpha: [0.25, 1.0]" in RECIPE, "tests.core_helpers.TOY_RECIPE changed shape"

# Only fine-tuning stages, for the tests that need no results to compare.
FINETUNE_ONLY = """\
name: toy_ft
output: {output}
corpora:
  nums: {{plugin: toy_corpus, n: 6}}
upstreams:
  small: {{plugin: toy_up, width: 4}}
finetune:
  ft: {{plugin: toy_ft, corpus: nums, steps: {steps}, sleep: 0.3}}
"""
SECOND = "  ft2: {{plugin: toy_ft, corpus: nums, steps: {steps}, sleep: 0.3, lr: 0.2}}\n"


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (about 5 s to start), with one logical GPU (Ray schedules by it; torch
    finds no device and stays on the CPU); workers import `tests` from the checkout."""
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})  # "local": never a cluster found on this machine
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manager():
    return toy_only_manager()  # the toy plugins without importing every installed plugin


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory):
    return write_recipe(tmp_path_factory.mktemp("ray_recipe"), RECIPE)


class Hooked(RayExecutor):
    """A RayExecutor that records what the driver is told and lets a test act on progress events."""

    def __init__(self, hook=None, plugins_factory=toy_only_manager, **kwargs):
        super().__init__(plugins_factory=plugins_factory, **kwargs)
        self.hook = hook
        self.progress: list[tuple[str, int, int, dict]] = []

    def execute(self, stages, done, output, on_start, on_finish, on_progress):
        def recording(stage, step, total, info):
            self.progress.append((stage.key, step, total, info))
            if self.hook is not None:
                self.hook(stage, step, total)
            on_progress(stage, step, total, info)

        super().execute(stages, done, output, on_start, on_finish, recording)


def run(path: Path, manager, executor, output: Path):
    plan = build_plan(load_recipe(path, manager, output=output), manager)
    return plan, run_plan(plan, output, executor)


def metric_values(output: Path) -> dict[tuple[str, str], float]:
    with Store(output, readonly=True) as store:
        return {(m.stage, m.full_name): m.value for m in store.metrics()}


def stage_rows(output: Path, kind: str | None = None):
    with Store(output, readonly=True) as store:
        return store.stages(kind=kind)


def finetune_key(plan, name: str) -> str:
    return next(s.key for s in plan.stages.values() if s.kind == "finetune" and s.labels["finetune"] == name)


def worker_pids(key: str) -> list[int]:
    """Ray titles a worker process after the task it runs (`ray::finetune <key>`); Linux /proc lists them."""
    title = f"ray::finetune {key[:10]}".encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(title):
                pids.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return pids


@pytest.fixture(scope="module")
def reference(recipe_path, manager, tmp_path_factory):
    """The same recipe with the local executor."""
    output = tmp_path_factory.mktemp("local") / "out"
    _, summary = run(recipe_path, manager, LocalExecutor(manager), output)
    assert summary.ok
    return metric_values(output)


@pytest.fixture(scope="module")
def ray_run(ray_instance, recipe_path, manager, tmp_path_factory):
    output = tmp_path_factory.mktemp("ray") / "out"
    executor = Hooked()
    plan, summary = run(recipe_path, manager, executor, output)
    return plan, summary, executor, output


def test_ray_gives_the_same_results_as_the_local_executor(ray_run, reference):
    plan, summary, _, output = ray_run
    assert summary.ok and len(summary.ran) == len(plan.stages)
    assert {s.kind for s in plan.stages.values()} == {"prepare", "upstream", "finetune", "merge", "evaluate", "score"}
    values = metric_values(output)
    assert len([k for k in values if k[1] == "superb.score"]) == plan.counts()["score"] == 5
    assert values == reference
    assert not list(output.glob(f"{ray_executor.MARKER_PREFIX}*"))  # the marker is removed after the run


def test_independent_stages_overlap_in_time(ray_run):
    _, _, _, output = ray_run
    ft, ft2 = stage_rows(output, "finetune")
    overlap = min(ft.ended, ft2.ended) - max(ft.started, ft2.started)
    # each takes about 6 × 1 s; run one after the other they would not overlap at all
    assert overlap > 1.0, (ft.started, ft.ended, ft2.started, ft2.ended)


def test_stages_on_one_feature_cache_are_submitted_in_their_turn_to_fill_it(ray_instance, manager, tmp_path):
    path, timeline = timed_fill_recipe(tmp_path, fine_tune=False)  # one model: its stages meet 2 free CPUs
    plan, summary = run(path, manager, Hooked(), tmp_path / "out")
    assert summary.ok
    assert_filled_in_turn_then_side_by_side(plan, timeline, models=1)


def test_progress_and_the_store_say_where_each_stage_ran(ray_run):
    plan, _, executor, output = ray_run
    host = socket.gethostname()
    assert {row.host for row in stage_rows(output)} == {host}
    assert {key for key, *_ in executor.progress} == set(plan.stages)
    assert all(info["on"] == host for *_, info in executor.progress)
    ft = finetune_key(plan, "ft")
    assert (ft, 6, 6) in {(key, step, total) for key, step, total, _ in executor.progress}


def test_an_output_folder_the_workers_cannot_see_fails_the_run_at_once(ray_instance, recipe_path, manager, tmp_path,
                                                                       monkeypatch):
    def unseen_marker(output):  # the driver "writes" a marker that no worker can read
        return Path(output) / f"{ray_executor.MARKER_PREFIX}never-written", "token"

    monkeypatch.setattr(ray_executor.executor, "write_marker", unseen_marker)  # where execute() looks it up
    output = tmp_path / "out"
    with pytest.raises(HarnessError, match=r"^the output folder .*/out is not visible from Ray node\(s\) ") as info:
        run(recipe_path, manager, Hooked(), output)
    assert "file system every node mounts at the same path" in str(info.value)
    assert stage_rows(output) == []
    assert [p.name for p in output.iterdir() if not p.name.startswith(("results", ".harness.lock"))] == []


def test_a_node_without_the_planned_plugins_fails_the_run_at_once(ray_instance, recipe_path, manager, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(HarnessError, match=r"^Ray node .* has corpus plugin 'toy_corpus' not installed, but the "
                                           r"driver planned with version 1@toy-tests; install the same packages"):
        run(recipe_path, manager, Hooked(plugins_factory=no_plugins_manager), output)
    assert stage_rows(output) == []


def test_a_node_that_cannot_see_an_input_path_fails_the_run_at_once(ray_instance, manager, tmp_path):
    # `harness run` checks the recipe's paths on the driver first; run_plan alone does not, so here only the
    # node's check stands between a missing corpus root and the stages
    text = RECIPE.replace("nums: {{plugin: toy_corpus, n: 6}}", "nums: {{plugin: toy_corpus, n: 6, root: {root}}}")
    path = write_recipe(tmp_path, text, root=str(tmp_path / "elsewhere"))
    with pytest.raises(HarnessError, match=r"^Ray node .* cannot see 1 input path\(s\) of the recipe \(prepare "
                                           r"toy_corpus root -> .*/elsewhere\); put corpora and checkpoints on a"):
        run(path, manager, Hooked(), tmp_path / "out")
    assert stage_rows(tmp_path / "out") == []


def test_a_stage_no_node_can_hold_is_an_error_on_a_local_instance_and_a_warning_on_a_cluster(ray_instance, caplog):
    gpu_stage = Stage("g" * 16, "finetune", "toy_ft", "1", {}, {}, 0, {"title": "finetune big"}, {"num_gpus": 2})
    executor = Hooked()
    options = {gpu_stage.key: ray_executor.task_options(gpu_stage)}
    with pytest.raises(HarnessError, match=r"^the finetune stage 'finetune big' asks for 1 CPU, 2 GPU but no Ray node "
                                           r"has that much \(.*: 2 CPU, 1 GPU\); lower `resources: {finetune: ...}`"):
        executor._check_feasible([gpu_stage], options, local=True)
    executor._check_feasible([gpu_stage], options, local=False)  # an autoscaling cluster may add such a node
    assert "it waits until such a node joins the cluster" in caplog.text


def test_declared_resources_are_what_ray_schedules_by(ray_instance, manager, tmp_path):
    """Each fine-tuning declares the instance's one GPU, so the two no longer overlap, and the worker of a
    GPU stage is not reused (the next GPU stage may be given another device)."""
    text = FINETUNE_ONLY + SECOND + "resources:\n  finetune: {{num_gpus: 1, memory: 10MB}}\n"
    path = write_recipe(tmp_path, text, steps="3")
    pids: set[int] = set()

    def record(stage, step, total):
        if stage.kind == "finetune" and step >= 1:
            pids.update(worker_pids(stage.key))

    _, summary = run(path, manager, Hooked(record), tmp_path / "out")
    assert summary.ok
    ft, ft2 = stage_rows(tmp_path / "out", "finetune")
    assert min(ft.ended, ft2.ended) <= max(ft.started, ft2.started)
    assert len(pids) == 2
    deadline = time.time() + 30  # a loaded machine takes a while to end and reap them
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_instance, recipe_path, manager, reference,
                                                                     tmp_path):
    killed: list[int] = []
    target: dict[str, str] = {}

    def kill_mid_stage(stage, step, total):
        if stage.key == target.get("key") and step >= 2 and not killed:
            pids = worker_pids(stage.key)
            assert len(pids) == 1
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    plan = build_plan(load_recipe(recipe_path, manager, output=tmp_path / "out"), manager)
    target["key"] = finetune_key(plan, "ft")
    summary = run_plan(plan, tmp_path / "out", Hooked(kill_mid_stage, max_retries=2))
    assert killed and summary.ok
    ft = next(r for r in stage_rows(tmp_path / "out", "finetune") if r.key == target["key"])
    assert ft.status == "done"
    assert ft.messages[0].startswith("attempt 1 died on") and "WorkerCrashedError" in ft.messages[0]
    resumed = [m for m in ft.messages if m.startswith("resumed at step")]
    assert resumed and int(resumed[0].split()[-1]) >= 2
    assert metric_values(tmp_path / "out") == reference


def test_a_worker_that_keeps_dying_fails_the_stage_and_keeps_its_checkpoint(ray_instance, manager, tmp_path):
    path = write_recipe(tmp_path, FINETUNE_ONLY, steps="6")
    plan = build_plan(load_recipe(path, manager), manager)
    key = finetune_key(plan, "ft")

    def kill(stage, step, total):
        if stage.key == key and step >= 2:
            for pid in worker_pids(key):
                os.kill(pid, signal.SIGKILL)

    summary = run_plan(plan, tmp_path / "out", Hooked(kill, max_retries=0))
    assert list(summary.failed) == [key]
    (row,) = stage_rows(tmp_path / "out", "finetune")
    assert row.status == "failed"
    assert row.error.startswith("the worker running this stage died 1 time(s), the last time with WorkerCrashedError")
    assert (tmp_path / "out" / ".work" / key / "checkpoint.pt").is_file()


def test_ctrl_c_cancels_running_tasks_and_a_rerun_resumes(ray_instance, recipe_path, manager, reference, tmp_path):
    output = tmp_path / "out"
    plan = build_plan(load_recipe(recipe_path, manager, output=output), manager)
    ft = finetune_key(plan, "ft")

    def interrupt(stage, step, total):
        if stage.key == ft and step >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, output, Hooked(interrupt))
    deadline = time.time() + 10
    while worker_pids(ft) and time.time() < deadline:
        time.sleep(0.1)
    assert not worker_pids(ft), "the cancelled task's worker is still running"
    statuses = {row.key: row.status for row in stage_rows(output)}
    assert statuses[ft] == "interrupted"
    assert set(statuses.values()) <= {"done", "interrupted"}
    assert not (output / ft).exists() and (output / ".work" / ft / "checkpoint.pt").is_file()

    summary = run_plan(plan, output, LocalExecutor(manager))  # the same stage functions resume it here
    assert summary.ok
    row = next(r for r in stage_rows(output, "finetune") if r.key == ft)
    assert any(m.startswith("resumed at step") for m in row.messages)
    assert metric_values(output) == reference
