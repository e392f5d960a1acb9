"""The output folder under faults: stray and live temp folders, a second run, a damaged store or checkpoint,
a full disk, a crash in every stage kind. Finished stages always survive and reruns give the same numbers."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.errors import AudioError
from harness.core.outdir import OutputLock
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.store import DB_NAME, Store
from harness.pipeline import execute
from harness.pipeline.execute import OUTCOME, WORK
from tests.core_helpers import toy_manager, write_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A finished toy run: its metric values by stage title, and its stage folders' outcomes."""
    tmp = tmp_path_factory.mktemp("reference")
    path = write_recipe(tmp)
    manager = toy_manager()
    recipe = load_recipe(path, manager)
    from harness.pipeline.executors.local import LocalExecutor
    from harness.pipeline.run import run_plan
    assert run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager, device="cpu")).ok
    return metric_values(recipe.output)


def metric_values(output: Path) -> dict[tuple[str, str], float]:
    with Store(output, readonly=True) as store:
        titles = {s.key: s.name for s in store.stages()}
        return {(titles[m.stage], m.full_name): m.value for m in store.metrics()
                if not m.full_name.startswith("superb")}  # score keys carry the table's path


def run_cli(path: Path) -> int:
    return main(["run", str(path), "--device", "cpu"])


def plan_of(path: Path, manager):
    return build_plan(load_recipe(path, manager), manager)


def finished(out: Path) -> set[str]:
    return {p.parent.name for p in out.glob(f"*/{OUTCOME}")}


def test_only_the_harness_own_tmp_folders_are_cleaned(tmp_path, toy_cli, reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    stage = next(iter(plan_of(path, toy_cli).stages))
    (out / "important.tmp").mkdir(parents=True)
    (out / "important.tmp" / "notes.txt").write_text("keep me")
    (out / f"{stage}.tmp").mkdir()
    (out / f"{stage}.tmp" / "half").write_text("partial")
    assert run_cli(path) == 0
    assert (out / "important.tmp" / "notes.txt").read_text() == "keep me"
    assert not (out / f"{stage}.tmp").exists()
    assert metric_values(out) == reference


def test_a_second_run_on_a_locked_output_folder_is_refused_naming_the_first(tmp_path, toy_cli, capsys, reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        assert run_cli(path) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another `harness run` (pid {os.getpid()} on " in err
        assert "wait for it to finish or give this run another --output." in err
        assert not finished(out)
    assert run_cli(path) == 0  # released: the next run proceeds
    assert metric_values(out) == reference


def test_a_run_in_another_process_holding_the_folder_is_named(tmp_path, toy_cli, capsys):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    holder = ("import sys, time; from harness.core.outdir import OutputLock\n"
              "with OutputLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        assert run_cli(path) == 2
    finally:
        proc.kill()
        proc.wait()
    assert f"is in use by another `harness run` (pid {proc.pid} on " in capsys.readouterr().err
    assert not finished(out)
    assert run_cli(path) == 0  # the holder died: its lock went with it


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_set_aside_and_rebuilt_from_the_stage_folders(damage, tmp_path, toy_cli, capsys,
                                                                          reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert run_cli(path) == 0
    before = finished(out)
    db = out / DB_NAME
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    db.write_bytes(os.urandom(4096) if damage == "garbage" else data[: len(data) // 2])
    capsys.readouterr()
    for command in (["results", str(out)], ["leaderboard", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"the results store {db} is damaged (" in err and "rerun `harness run`" in err
        assert "Traceback" not in err
    assert run_cli(path) == 0
    assert finished(out) == before  # nothing ran again, nothing was lost
    assert len(list(out.glob(f"{DB_NAME}.damaged-*"))) == 1
    assert metric_values(out) == reference
    assert main(["results", str(out)]) == 0


def test_a_truncated_mid_stage_checkpoint_is_discarded_and_the_stage_restarts(tmp_path, toy_cli, reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    ft = next(s for s in plan_of(path, toy_cli).stages.values() if s.kind == "finetune")
    ckpt = out / WORK / ft.key / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 truncated zip")
    assert run_cli(path) == 0
    with Store(out, readonly=True) as store:
        messages = store.stage(ft.key).messages
    assert any("was damaged" in m and "discarded it and restarted the stage" in m for m in messages)
    assert metric_values(out) == reference


def test_a_stage_folder_deleted_by_hand_is_run_again(tmp_path, toy_cli, reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert run_cli(path) == 0
    ev = next(s for s in plan_of(path, toy_cli).stages.values() if s.kind == "evaluate")
    before = finished(out)
    import shutil
    shutil.rmtree(out / ev.key)
    assert run_cli(path) == 0
    assert finished(out) == before
    assert metric_values(out) == reference


def test_a_full_disk_inside_a_stage_is_one_sentence_and_the_rerun_is_identical(tmp_path, toy_cli, capsys,
                                                                               monkeypatch, reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(execute, "write_json", no_space)  # evaluate writes metrics.json with it
    assert run_cli(path) == 2
    err = capsys.readouterr().err
    assert f"the disk holding {out} is full; free some space and rerun the same command" in err
    survived = finished(out)
    assert survived and not list(out.glob("*.tmp"))
    monkeypatch.undo()
    toy_cli_again = toy_manager()
    monkeypatch.setattr("harness.cli.common.default_manager", lambda: toy_cli_again)
    monkeypatch.setattr("harness.pipeline.execute.default_manager", lambda: toy_cli_again)
    assert run_cli(path) == 0
    assert survived <= finished(out)
    assert metric_values(out) == reference


def test_a_full_disk_under_the_store_is_one_sentence(tmp_path, toy_cli, capsys, monkeypatch):
    path = write_recipe(tmp_path)

    def full(self, row):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "record_stage", full)
    assert run_cli(path) == 2
    err = capsys.readouterr().err
    assert "the disk holding" in err and "is full; free some space" in err and "Traceback" not in err


@pytest.mark.parametrize("error, code", [(AudioError("test0.wav is not audio; replace or remove it."), 2),
                                         (RuntimeError("a bug"), 1)])
def test_a_user_error_inside_a_stage_exits_2_and_a_bug_exits_1(error, code, tmp_path, toy_cli, monkeypatch,
                                                                capsys):
    from tests.toy_plugins import ToyEval

    def broken(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(ToyEval, "evaluate", broken)
    assert run_cli(write_recipe(tmp_path)) == code
    assert "failed:" in capsys.readouterr().err
    assert finished(tmp_path / "out")  # the stages before it are kept


class Crash(BaseException):
    """Stands for a kill: nothing in the harness catches it."""


@pytest.mark.parametrize("kind", list(execute.STAGE_FUNCTIONS))
def test_a_crash_inside_any_stage_kind_resumes_to_the_same_numbers(kind, tmp_path, toy_cli, monkeypatch,
                                                                   reference):
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    real = execute.STAGE_FUNCTIONS[kind]

    def crash_midway(stage, inputs, ctx):
        real(stage, inputs, ctx)  # the artifacts are written, the stage is not yet renamed into place
        raise Crash

    monkeypatch.setitem(execute.STAGE_FUNCTIONS, kind, crash_midway)
    with pytest.raises(Crash):
        run_cli(path)
    assert list(out.glob("*.tmp"))  # left behind as a kill leaves it
    monkeypatch.setitem(execute.STAGE_FUNCTIONS, kind, real)
    assert run_cli(path) == 0
    assert not list(out.glob("*.tmp"))
    assert metric_values(out) == reference
