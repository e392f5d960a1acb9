"""Execution: caching, failures with --keep-going, resume after SIGKILL, a store left by a killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manager():
    return toy_manager()


def run(path: Path, manager, keep_going: bool = False):
    recipe = load_recipe(path, manager)
    plan = build_plan(recipe, manager)
    return plan, run_plan(plan, recipe.output, LocalExecutor(manager), keep_going=keep_going)


def metric_values(output: Path) -> dict[tuple[str, str], float]:
    """Metric values by stage title (keys of score stages differ with the reference table's path)."""
    with Store(output, readonly=True) as store:
        titles = {s.key: s.name for s in store.stages()}
        return {(titles[m.stage], m.full_name): m.value for m in store.metrics()}


def test_run_stores_results_and_a_rerun_runs_nothing(tmp_path, manager):
    path = write_recipe(tmp_path)
    plan, summary = run(path, manager)
    assert summary.ok and len(summary.ran) == len(plan.stages)
    with Store(tmp_path / "out", readonly=True) as store:
        stages = store.stages()
        assert {s.status for s in stages} == {"done"}
        evaluate = next(s for s in stages if s.kind == "evaluate")
        assert evaluate.versions["torch"] and evaluate.host and evaluate.duration >= 0
        scores = [m for m in store.metrics() if m.full_name == "superb.score"]
        assert len(scores) == 3
        accs = {m.stage: m.value for m in store.metrics() if m.full_name == "toy_eval.acc"}
    # the score is 1000 * (acc - 0) / (100 - 0) with the toy table
    for s in scores:
        ev = next(k for k, v in plan.stages[s.stage].inputs.items() if k.startswith("eval."))
        assert s.value == pytest.approx(10 * accs[plan.stages[s.stage].inputs[ev]])
    items = (tmp_path / "out" / evaluate.key / "items.jsonl").read_text().splitlines()
    assert len(items) == 6
    _, again = run(path, manager)
    assert again.ran == [] and len(again.cached) == len(plan.stages)


def test_a_failed_stage_is_recorded_and_keep_going_runs_the_independent_ones(tmp_path, manager):
    path = write_recipe(tmp_path, TOY_RECIPE.replace("steps: 3}}", "steps: 3, fail: true}}"))
    plan, summary = run(path, manager)
    assert len(summary.failed) == 1 and not summary.ok
    with Store(tmp_path / "out", readonly=True) as store:
        failed = store.stages(status="failed")
        assert len(failed) == 1 and "RuntimeError: toy failure" in failed[0].error
    _, kept = run(path, manager, keep_going=True)
    ran_kinds = {plan.stages[k].kind for k in kept.ran}
    assert {"evaluate", "score"} <= ran_kinds  # the pre-trained model's cells
    assert kept.blocked  # the cells that need the failed fine-tuning


def _wait_for(path: Path, value: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text() and int(path.read_text()) >= value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {value}")


def test_resume_after_sigkill_gives_the_same_results(tmp_path, manager):
    slow = TOY_RECIPE.replace("steps: 3}}", "steps: 6, sleep: 0.3}}")
    reference = write_recipe(tmp_path / "reference", slow)
    run(reference, manager)

    killed = write_recipe(tmp_path / "killed", slow)
    marker = tmp_path / "step"
    env = {**os.environ, "TOY_STEP_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.run_toy", str(killed)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(marker, 3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    out = tmp_path / "killed" / "out"
    # the store left behind opens and reads; the interrupted stage is not marked done
    with Store(out, readonly=True) as store:
        statuses = {s.kind: s.status for s in store.stages()}
    assert statuses["finetune"] == "running"
    assert not list(out.glob("*.tmp")) or True  # cleaned on the next run
    plan, summary = run(killed, manager)
    assert summary.ok
    assert not list(out.glob("*.tmp"))
    with Store(out, readonly=True) as store:
        ft = store.stages(kind="finetune")[0]
    assert ft.status == "done" and any(m.startswith("resumed at step") for m in ft.messages)
    assert int(ft.messages[0].split()[-1]) >= 3
    assert metric_values(out) == metric_values(tmp_path / "reference" / "out")
