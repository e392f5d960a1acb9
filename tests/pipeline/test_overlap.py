"""`harness run --jobs N`: independent stages at once in worker processes, with the results of a
sequential run."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from harness.cli import main
from harness.cli.run_cmd import _timing
from harness.core.errors import HarnessError
from harness.core.plan import Stage, build_plan
from harness.core.recipe import load_recipe
from harness.core.store import Store
from harness.core.threads import OPENMP_WAIT_SETTINGS, available_cores, passive_openmp_waits
from harness.pipeline.executors import overlap
from harness.pipeline.executors.cache_turns import CacheTurns
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.executors.overlap import admits, by_dependents, worker_threads
from harness.pipeline.run import RunSummary, run_plan
from harness.report.stage_times import busy_seconds
from tests.cache_turn_helpers import assert_filled_in_turn_then_side_by_side, timed_fill_recipe
from tests.core_helpers import toy_manager, write_recipe


def _run(path: Path, output: Path, jobs: int):
    manager = toy_manager()
    plan = build_plan(load_recipe(path, manager, output=output), manager)
    return plan, run_plan(plan, output, LocalExecutor(manager, device="cpu", jobs=jobs))


def _artifacts(output: Path, keys) -> dict[str, bytes]:
    """Every file of every stage's artifact folder; outcome.json without its times and host."""
    out = {}
    for key in keys:
        for path in sorted((output / key).rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(output))
            if path.name == "outcome.json":
                outcome = json.loads(path.read_text())
                out[rel] = json.dumps({k: v for k, v in outcome.items() if k not in ("started", "ended", "host")},
                                      sort_keys=True).encode()
            else:
                out[rel] = path.read_bytes()
    return out


def _metrics(output: Path) -> dict[tuple[str, str], float]:
    with Store(output, readonly=True) as store:
        return {(m.stage, m.full_name): m.value for m in store.metrics()}


_worker_waits: list[str | None] = []  # OMP_WAIT_POLICY as the overlapped run's worker processes saw it


class _AskingPool(ProcessPoolExecutor):
    """The overlapped run's pool, which asks one of its workers for its wait policy before closing."""

    def __exit__(self, *exc):
        _worker_waits.append(self.submit(os.getenv, "OMP_WAIT_POLICY").result())
        return super().__exit__(*exc)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overlap")
    path = write_recipe(tmp)
    plan, sequential = _run(path, tmp / "seq", jobs=1)
    with pytest.MonkeyPatch.context() as patch:
        for name in OPENMP_WAIT_SETTINGS:
            patch.delenv(name, raising=False)
        patch.setattr(overlap, "ProcessPoolExecutor", _AskingPool)
        _, overlapped = _run(path, tmp / "par", jobs=2)
        assert "OMP_WAIT_POLICY" not in os.environ  # the driver's own environment is back
    return plan, tmp, sequential, overlapped


def test_overlapped_run_gives_byte_identical_artifacts_and_metrics(two_runs):
    plan, tmp, sequential, overlapped = two_runs
    assert sequential.ok and overlapped.ok
    assert sorted(overlapped.ran) == sorted(sequential.ran) == sorted(plan.stages)
    seq, par = _artifacts(tmp / "seq", plan.stages), _artifacts(tmp / "par", plan.stages)
    assert seq.keys() == par.keys() and len(seq) > len(plan.stages)
    assert [name for name in seq if seq[name] != par[name]] == []
    assert _metrics(tmp / "par") == _metrics(tmp / "seq") != {}


def test_stages_ran_in_worker_processes_and_a_rerun_runs_nothing(two_runs):
    plan, tmp, _, _ = two_runs
    with Store(tmp / "par", readonly=True) as store:
        rows = store.stages()
    assert {r.status for r in rows} == {"done"} and len(rows) == len(plan.stages)
    _, again = _run(write_recipe(tmp), tmp / "par", jobs=2)
    assert again.ran == [] and again.ok


def test_overlapped_workers_wait_passively_on_the_shared_cores(two_runs):
    assert _worker_waits == ["PASSIVE"]


def test_passive_waits_last_for_the_block_and_a_user_s_own_setting_stands(monkeypatch):
    for name in OPENMP_WAIT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError), passive_openmp_waits():
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        raise RuntimeError
    assert "OMP_WAIT_POLICY" not in os.environ
    for name, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "100000")):
        monkeypatch.setenv(name, value)
        with passive_openmp_waits():
            assert os.environ.get("OMP_WAIT_POLICY") == (value if name == "OMP_WAIT_POLICY" else None)
        assert os.environ[name] == value
        monkeypatch.delenv(name)


def test_jobs_must_be_positive_and_workers_get_a_sequential_stage_s_threads():
    with pytest.raises(HarnessError, match=r"--jobs must be at least 1 \(got 0\)"):
        LocalExecutor(device="cpu", jobs=0)
    assert worker_threads() == available_cores()


@pytest.mark.parametrize("flag", ["--jobs", "--gpu-jobs"])
def test_run_command_rejects_zero_jobs(tmp_path, capsys, flag):
    path = write_recipe(tmp_path)
    assert main(["run", str(path), flag, "0"]) == 2
    assert f"{flag} must be at least 1 (got 0)." in capsys.readouterr().err


def test_more_gpu_jobs_than_jobs_is_refused(tmp_path, capsys):
    path = write_recipe(tmp_path)
    assert main(["run", str(path), "--jobs", "2", "--gpu-jobs", "3"]) == 2
    assert "--gpu-jobs 3 is more than --jobs 2, the stages that run at once; raise --jobs to at least 3." \
        in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--jobs", "--gpu-jobs"])
def test_jobs_with_the_ray_executor_is_refused(tmp_path, capsys, flag):
    path = write_recipe(tmp_path)
    assert main(["run", str(path), "--executor", "ray", flag, "2"]) == 2
    assert f"{flag} is for the local executor" in capsys.readouterr().err


def _stage(key: str, kind: str, model: str = "", corpus: str = "") -> Stage:
    inputs = {"model": model, "corpus": corpus} if kind == "evaluate" else {}
    return Stage(key, kind, "p", "1", {}, inputs, 0)


def test_admission_counts_gpu_slots_and_gives_a_feature_cache_to_one_stage_at_a_time():
    ft, merge = _stage("ft", "finetune"), _stage("merge", "merge")
    ev_a, ev_a2 = _stage("a", "evaluate", "m1", "c"), _stage("a2", "evaluate", "m1", "c")
    ev_b = _stage("b", "evaluate", "m2", "c")
    turns = CacheTurns([ft, merge, ev_a, ev_a2, ev_b])
    # one slot (the default): a stage on the GPU holds it; CPU stages start beside it
    assert not admits(ev_b, [ft], 1, turns.ready)
    assert admits(merge, [ft], 1, turns.ready)
    # more slots: accelerator stages share the GPU up to that many
    assert admits(ev_b, [ft, merge], 2, turns.ready)
    assert not admits(ev_b, [ft, ev_a], 2, turns.ready)
    # no CUDA device: no slots to count
    assert admits(ev_b, [ft, ev_a], None, turns.ready)
    # a stage on a feature cache waits until those before it (plan order) filled it, however many slots
    assert not admits(ev_a2, [ev_a], 4, turns.ready)
    assert not admits(ev_a2, [ev_a], None, turns.ready)
    assert admits(ev_b, [ev_a], 4, turns.ready)  # another model's cache
    turns.mark_filled("a")  # a said it will add nothing more: a2 starts beside it
    assert admits(ev_a2, [ev_a], 4, turns.ready)
    assert not admits(ev_a2, [ev_a], 1, turns.ready)  # the GPU slots still count


def test_turns_on_a_cache_follow_the_plan_and_done_stages_have_had_theirs():
    a1, a2, a3 = (_stage(k, "evaluate", "m1", "c") for k in ("a1", "a2", "a3"))
    turns = CacheTurns([a1, a2, a3])
    assert [turns.ready(s) for s in (a1, a2, a3)] == [True, False, False]
    turns.mark_filled("a2")  # out of turn: a3 still waits for a1
    assert not turns.ready(a3)
    turns.mark_filled("a1")
    assert turns.ready(a3)
    assert CacheTurns([a1, a2, a3], done={"a1", "a2"}).ready(a3)  # finished in an earlier run
    assert CacheTurns([_stage("ft", "finetune")]).ready(_stage("ft", "finetune"))  # no cache, no turn


def test_stages_on_one_cache_fill_it_in_plan_order_and_then_run_side_by_side(tmp_path):
    path, timeline = timed_fill_recipe(tmp_path)
    # a slot for every evaluation: with fewer, the first evaluation of each model may take them all, and
    # each model's evaluations then rightly run one after the other
    plan, summary = _run(path, tmp_path / "out", jobs=9)
    assert summary.ok
    assert_filled_in_turn_then_side_by_side(plan, timeline)


def _needs(stage: Stage, *keys: str) -> Stage:
    stage.inputs.update({f"in{i}": key for i, key in enumerate(keys)})
    return stage


def test_stages_that_more_stages_wait_on_start_first_and_a_feature_cache_keeps_plan_order():
    load = _stage("load", "upstream")
    ev_pre = _needs(_stage("ev_pre", "evaluate", "load", "c"), "load")
    ev_pre2 = _needs(_stage("ev_pre2", "evaluate", "load", "c"), "load")  # the same cache as ev_pre
    ft = _needs(_stage("ft", "finetune"), "load")
    merge = _needs(_stage("merge", "merge"), "ft", "load")
    ev_ft = _needs(_stage("ev_ft", "evaluate", "merge", "c"), "merge")
    score_pre = _needs(_stage("score_pre", "score"), "ev_pre2")  # ev_pre2 now has more waiting on it
    score_ft = _needs(_stage("score_ft", "score"), "ev_ft")
    plan = [load, ev_pre, ev_pre2, ft, merge, ev_ft, score_pre, score_ft]
    order = [s.key for s in by_dependents(plan)]
    # load (7 wait on it), ft (3), merge (2), then the evaluations (1 each) and the scores
    assert order[:3] == ["load", "ft", "merge"]
    # ev_pre2 outranks ev_pre, but they share a cache: the first in plan order takes the first place
    assert order.index("ev_pre") < order.index("ev_pre2")
    assert sorted(order) == sorted(s.key for s in plan)
    # equals keep plan order; a plan with no dependencies is left as it is
    singles = [_stage(k, "evaluate", f"model {k}", "c") for k in "xyz"]
    assert by_dependents(singles) == singles


def test_the_summary_times_the_stages_it_ran_as_the_store_does(two_runs):
    plan, tmp, sequential, overlapped = two_runs
    for summary, folder in ((sequential, "seq"), (overlapped, "par")):
        with Store(tmp / folder, readonly=True) as store:
            durations = sorted(r.duration for r in store.stages())
        assert sorted(end - start for start, end in summary.intervals) == pytest.approx(durations)
        assert summary.stage_seconds == pytest.approx(sum(durations))
    # one stage at a time: the wall time with a stage running is the stage time
    assert busy_seconds(sequential.intervals) == pytest.approx(sequential.stage_seconds)


def test_the_run_line_says_the_wall_time_and_stages_at_a_time(tmp_path, capsys, toy_cli):
    summary = RunSummary(ran=["a", "b", "c"], intervals=[(0.0, 10.0), (2.0, 8.0), (10.0, 14.0)])
    assert _timing(summary) == " in 14.0 s (20.0 s of stage time, 1.43 at a time)"
    assert _timing(RunSummary()) == ""
    path = write_recipe(tmp_path)
    assert main(["run", str(path), "--device", "cpu", "--heartbeat", "0"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "stage(s) ran" in x)
    assert re.fullmatch(r"\d+ stage\(s\) ran in [\d.]+ s \([\d.]+ s of stage time, 1.00 at a time\), 0 cached, "
                        r"0 failed, 0 not run; results in .*", line), line
