"""Which finished stage of a cell is current: the one the latest run planned, else the newest; a store made
before the planned table reads as one whose runs planned nothing."""

from __future__ import annotations

import sqlite3

from harness.core.store import DB_NAME, StageRow, Store, cell_identity, current_by_cell, replaced_keys


def _stage(key: str, started: float, steps: int, seed: int = 0, rank: list[int] | None = None) -> StageRow:
    labels = {"upstream": "u", "model": "pre-trained", "downstream": "sid", "seed": seed, "rank": rank or [0, 0]}
    return StageRow(key, "evaluate", "sid", "sid", {"steps": steps}, {}, labels, "done", started, started + 1, 1.0,
                    None, None, {}, None, [])


def test_the_latest_plan_decides_and_the_newest_stands_in_where_no_plan_says(tmp_path):
    old, new, other_seed = _stage("a", 1.0, 150), _stage("b", 2.0, 50, rank=[1, 0]), _stage("c", 3.0, 50, seed=1)
    assert cell_identity(old.kind, old.labels) == cell_identity(new.kind, new.labels)  # rank aside: one cell
    assert replaced_keys([old, new, other_seed]) == {"a"}  # no plan recorded: the newest
    with Store(tmp_path) as store:
        for stage in (old, new, other_seed):
            store.record_stage(stage)
        store.record_plan([(cell_identity(old.kind, old.labels), "a")], when=10.0)  # the old recipe ran again
        planned = store.planned()
    assert replaced_keys([old, new, other_seed], planned) == {"b"}
    assert current_by_cell([old, new, other_seed], planned)[cell_identity(old.kind, old.labels)].key == "a"
    # a planned stage that never finished leaves the newest finished one current
    unfinished = {cell_identity(old.kind, old.labels): ("zzz", 11.0)}
    assert replaced_keys([old, new, other_seed], unfinished) == {"a"}


def test_a_store_made_before_the_planned_table_reads_as_planning_nothing(tmp_path):
    with Store(tmp_path) as store:
        store.record_stage(_stage("a", 1.0, 150))
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("DROP TABLE planned")
    db.close()
    with Store(tmp_path, readonly=True) as store:
        assert store.planned() == {}
        assert replaced_keys(store.stages(), store.planned()) == set()
