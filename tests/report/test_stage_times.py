"""`harness results --times`: stage time by kind and plugin, the busy wall time and stages at a time."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.core.store import StageRow, Store
from harness.report.stage_times import busy_seconds, stage_times


def _row(key: str, kind: str, plugin: str, start: float | None, end: float | None, status: str = "done") -> StageRow:
    duration = None if start is None or end is None else end - start
    return StageRow(key=key, kind=kind, plugin=plugin, name=f"{kind} {plugin} {key}", params={}, inputs={},
                    labels={}, status=status, started=start, ended=end, duration=duration, host="h",
                    git_commit=None, versions={}, error=None, messages=[])


# two runs into one folder, an hour apart: the first runs two stages at a time, the second one at a time
ROWS = [
    _row("a1", "finetune", "supervised", 1000.0, 1030.0),
    _row("a2", "evaluate", "pr", 1010.0, 1050.0),  # overlaps a1 by 20 s
    _row("a3", "evaluate", "pr", 1050.0, 1060.0),
    _row("b1", "evaluate", "abx", 4600.0, 4625.0, status="failed"),  # a failed stage spent its time too
    _row("b2", "evaluate", "pr", 4625.0, 4630.0),
    _row("c1", "evaluate", "sid", 4630.0, None, status="running"),  # never finished: not timed
]


def test_busy_time_is_the_union_of_the_intervals():
    assert busy_seconds([]) == 0.0
    assert busy_seconds([(0, 10), (5, 12), (20, 21), (2, 3)]) == pytest.approx(13.0)  # [0, 12] and [20, 21]
    assert busy_seconds([(0, 10), (10, 15)]) == pytest.approx(15.0)
    assert busy_seconds([(3, 4), (0, 10)]) == pytest.approx(10.0)  # one inside another


def test_stage_times_group_sum_and_rank():
    times = stage_times(ROWS, longest=3)
    # 30 + 40 + 10 + 25 + 5 = 110 s of stage time in 60 + 30 = 90 s with a stage running (the gap between
    # the two runs does not count)
    assert times.stage_seconds == pytest.approx(110.0)
    assert times.busy_seconds == pytest.approx(90.0)
    assert times.concurrency == pytest.approx(110 / 90)
    assert times.untimed == 1
    assert [(k.kind, k.plugin, k.stages, k.seconds) for k in times.by_kind] == [
        ("evaluate", "pr", 3, pytest.approx(55.0)),
        ("finetune", "supervised", 1, pytest.approx(30.0)),
        ("evaluate", "abx", 1, pytest.approx(25.0)),
    ]
    assert [s.key for s in times.longest] == ["a2", "a1", "b1"]


def test_a_sequential_run_has_one_stage_at_a_time():
    rows = [_row("s1", "evaluate", "pr", 0.0, 4.0), _row("s2", "evaluate", "pr", 4.0, 10.0)]
    assert stage_times(rows).concurrency == pytest.approx(1.0)
    assert stage_times([]).concurrency == 0.0


@pytest.fixture
def store_dir(tmp_path):
    with Store(tmp_path) as store:
        for row in ROWS:
            store.record_stage(row)
    return tmp_path


def test_results_times_prints_the_table_and_the_concurrency(store_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["results", str(store_dir), "--times"]) == 0
    out = capsys.readouterr().out
    assert "stage time 110.0 s in 90.0 s of wall time with a stage running: 1.22 stages at a time" in out
    assert "1 stages without a finished time" in out
    lines = [line for line in out.splitlines() if "│" in line]
    pr = next(line for line in lines if "│ pr " in line)
    assert [cell.strip() for cell in pr.split("│")[1:-1]] == ["evaluate", "pr", "3", "55.0", "50%"]
    assert "evaluate pr a2" in out  # the longest stage, by name


def test_results_json_carries_the_times(store_dir, capsys):
    assert main(["results", str(store_dir), "--json"]) == 0
    times = json.loads(capsys.readouterr().out)["times"]
    assert times["stage_seconds"] == pytest.approx(110.0) and times["busy_seconds"] == pytest.approx(90.0)
    assert times["by_kind"][0] == {"kind": "evaluate", "plugin": "pr", "stages": 3, "seconds": pytest.approx(55.0)}
    assert times["longest"][0]["key"] == "a2"
