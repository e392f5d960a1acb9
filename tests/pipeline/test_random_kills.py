"""`kill -9` at seeded random moments of a run over every stage kind (upstream, prepare, finetune, merge,
evaluate, score); each rerun finishes with artifacts byte for byte those of an uninterrupted run."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe

RECIPE = TOY_RECIPE.replace("steps: 3}}", "steps: 6, sleep: 0.05}}")
#: outcome.json holds times and hosts; everything else a stage writes must be identical
VOLATILE = {"outcome.json"}


def _run_in_process(path: Path):
    manager = toy_manager()
    recipe = load_recipe(path, manager)
    plan = build_plan(recipe, manager)
    # on the CPU: the run is forked, and a forked child cannot use CUDA once the test process has
    return plan, run_plan(plan, recipe.output, LocalExecutor(manager, device="cpu"))


def _artifacts(out: Path) -> dict[str, bytes]:
    """Every file of every finished stage folder (by stage key), volatile records left out."""
    return {
        str(f.relative_to(out)): f.read_bytes()
        for stage in sorted(out.iterdir())
        if stage.is_dir() and len(stage.name) == 16 and not stage.name.endswith(".tmp")
        for f in sorted(stage.rglob("*"))
        if f.is_file() and f.name not in VOLATILE
    }


def _child(path: Path) -> None:
    _, summary = _run_in_process(path)
    os._exit(0 if summary.ok else 1)


def _forked_run(path: Path, delay: float | None) -> tuple[float, list[str]]:
    """Run the recipe in a forked process (no second start-up of torch). With a ``delay``, SIGKILL it that
    many seconds after its store appears. Return the seconds from the store's appearance to the end and
    the kinds of the stages left unfinished."""
    out = path.parent / "out"
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(path,))
    proc.start()
    try:
        deadline = time.time() + 60
        while not (out / "results.sqlite").exists() and proc.is_alive() and time.time() < deadline:
            time.sleep(0.002)
        start = time.perf_counter()
        if delay is None:
            proc.join(60)
        else:
            time.sleep(delay)
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    took = time.perf_counter() - start
    with Store(out, readonly=True) as store:
        return took, sorted(str(s.kind) for s in store.stages() if s.status != "done")


def test_kill_9_at_random_moments_then_rerun_is_byte_identical(tmp_path):
    reference = write_recipe(tmp_path / "reference", RECIPE)
    span, left = _forked_run(reference, None)
    assert not left
    plan, summary = _run_in_process(reference)  # all cached: the plan, to check the stage kinds
    assert summary.ok and not summary.ran
    assert {str(s.kind) for s in plan.stages.values()} == {"upstream", "prepare", "finetune", "merge", "evaluate",
                                                            "score"}
    expected = _artifacts(tmp_path / "reference" / "out")
    assert len(expected) > 20

    rng = random.Random(13)
    unfinished = []
    for i in range(3):  # one moment drawn in each third of the run
        # one reference table for all, so that score stages have the same keys
        path = write_recipe(tmp_path / f"killed{i}", RECIPE, table=str(tmp_path / "reference" / "table.yaml"))
        unfinished.append(_forked_run(path, span * (i + rng.random()) / 3)[1])
        _, again = _run_in_process(path)
        assert again.ok
        out = tmp_path / f"killed{i}" / "out"
        assert not list(out.glob("*.tmp"))
        assert _artifacts(out) == expected, f"kill {i} (unfinished: {unfinished[-1]})"
    assert any(unfinished), "every kill came after the run had finished"
