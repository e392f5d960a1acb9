"""Per-item results as columns: the same metrics as the item dicts give, a binary copy that is used only while it
matches its items.jsonl and is never unpickled, and a leaderboard that reads the copies to the same tables."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness.report import item_columns
from harness.report import leaderboard as lbm
from harness.report.item_columns import columns_of, read_columns
from harness.report.item_stats import GainStats, ItemStats, TrialStats, from_items
from tests.leaderboard_helpers import standard_run

SETTINGS = lbm.Settings(n_resamples=200, n_permutations=200)


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    return path


def _pairs(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"u{i}", "stats": {"per": [int(rng.integers(0, 9)), 10], "acc": [int(i % 2), 1]},
             "fold": i % 3} for i in range(n)]


def test_each_kind_equals_a_reading_by_hand_with_seeds_aligned_on_their_shared_items():
    seed0 = [{"id": "a", "stats": {"per": [1, 4]}}, {"id": "b", "stats": {"per": [2, 5]}},
             {"id": "c", "stats": {"per": [0, 3]}}, {"id": "d", "stats": {}}]
    seed1 = [{"id": "c", "stats": {"per": [3, 3]}}, {"id": "a", "stats": {"per": [2, 4]}},
             {"id": "a", "stats": {"per": [4, 4]}}]  # "a" twice: its last line counts, as in a dict
    pairs = from_items({0: seed0, 1: seed1}, "per")
    assert isinstance(pairs, ItemStats) and pairs.ids == ("a", "c") and pairs.seeds == (0, 1)
    np.testing.assert_array_equal(pairs.num, [[1, 0], [4, 3]])
    np.testing.assert_array_equal(pairs.den, [[4, 3], [4, 3]])
    assert pairs.per_seed() == pytest.approx([100 * 1 / 7, 100 * 7 / 7])

    trials = [{"id": f"t{i}", "stats": {"eer": {"target": i % 2, "score": s, "group": f"spk{i // 2}"}}}
              for i, s in enumerate([0.1, 0.9, 0.4, 0.3])]
    eer = from_items({3: trials}, "eer")
    assert isinstance(eer, TrialStats) and eer.groups == ("spk0", "spk0", "spk1", "spk1")
    np.testing.assert_array_equal(eer.targets, [0, 1, 0, 1])
    np.testing.assert_array_equal(eer.scores, [[0.1, 0.9, 0.4, 0.3]])
    relabelled = [{**t, "stats": {"eer": {**t["stats"]["eer"], "target": 1}}} for t in trials]
    with pytest.raises(ValueError, match="label or group the same trials differently"):
        from_items({0: trials, 1: relabelled}, "eer")

    gains = from_items({0: [{"id": "q1", "stats": {"mtwv": {"gains": [0.5, -0.2]}}},
                            {"id": "q2", "stats": {"mtwv": {"gains": [0.1, 0.3]}}}]}, "mtwv")
    assert isinstance(gains, GainStats) and gains.value == pytest.approx(max(0.3, 0.05))
    with pytest.raises(ValueError, match="different forms"):
        from_items({0: seed0[:1], 1: [{"id": "a", "stats": {"per": {"gains": [1.0]}}}]}, "per")
    assert from_items({0: seed0, 1: [{"id": "a", "stats": {}}]}, "per").n_items == 0


def test_malformed_items_are_refused_in_the_errors_the_leaderboard_reports_metric_by_metric():
    with pytest.raises(KeyError):
        columns_of([{"stats": {"per": [1, 2]}}])  # no id: nothing of the file is usable
    for bad in ([1], "x", {"score": 1.0}):
        columns = columns_of([{"id": "a", "stats": {"bad": bad, "acc": [1, 1]}}])
        with pytest.raises(ValueError):
            from_items({0: columns}, "bad")
        assert from_items({0: columns}, "acc").value == 100.0  # the file's other metrics stay usable


def test_the_first_read_writes_a_copy_that_later_reads_use_while_the_file_is_unchanged(tmp_path, monkeypatch):
    path = _write(tmp_path / "items.jsonl", _pairs(50, 0))
    parsed = read_columns(path)
    copy = tmp_path / "items.jsonl.npz"
    assert copy.is_file()
    assert parsed.folds == tuple(str(i % 3) for i in range(50))

    def no_parse(_path):
        raise AssertionError("parsed although its copy is current")

    monkeypatch.setattr(item_columns, "read_json_lines", no_parse)
    again = read_columns(path)
    assert (again.ids, again.folds, list(again.metrics)) == (parsed.ids, parsed.folds, list(parsed.metrics))
    for name, column in parsed.metrics.items():
        np.testing.assert_array_equal(again.metrics[name].values, column.values)
        np.testing.assert_array_equal(again.metrics[name].rows, column.rows)
    monkeypatch.undo()

    # the file changes: the copy is stale, and the next read parses it and rewrites the copy
    _write(path, _pairs(60, 1))
    os.utime(path, ns=(os.stat(copy).st_mtime_ns + 10**9,) * 2)
    changed = read_columns(path)
    assert len(changed.ids) == 60
    assert from_items({0: changed}, "per").value == pytest.approx(from_items({0: _pairs(60, 1)}, "per").value)
    monkeypatch.setattr(item_columns, "read_json_lines", no_parse)
    assert len(read_columns(path).ids) == 60


def test_a_damaged_or_pickled_copy_is_parsed_anew_and_never_unpickled(tmp_path, monkeypatch):
    path = _write(tmp_path / "items.jsonl", _pairs(20, 0))
    read_columns(path)
    copy = tmp_path / "items.jsonl.npz"
    copy.write_bytes(copy.read_bytes()[:100])
    assert len(read_columns(path).ids) == 20

    calls = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a))
    with np.load(copy) as stored:
        arrays = dict(stored)
    arrays["ids"] = np.array([object()] * 20, dtype=object)  # stored through pickle
    with open(copy, "wb") as handle:
        np.savez(handle, **arrays)
    assert read_columns(path).ids == tuple(f"u{i}" for i in range(20)) and calls == []


def test_a_copy_that_cannot_be_written_leaves_the_file_read_as_it_is(tmp_path):
    path = _write(tmp_path / "items.jsonl", _pairs(10, 0))
    (tmp_path / "items.jsonl.npz").mkdir()  # in the copy's place: neither read nor replaced
    assert len(read_columns(path).ids) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl", "items.jsonl.npz"]
    assert not any((tmp_path / "items.jsonl.npz").iterdir())


def test_a_leaderboard_from_the_copies_equals_the_one_from_the_files(tmp_path, monkeypatch):
    run = standard_run(tmp_path / "out", seeds=[0, 1], n_items=40)
    run.close()
    first = lbm.build(run.output, SETTINGS)
    copies = sorted(run.output.glob("*/items.jsonl.npz"))
    assert copies and len(copies) == len(sorted(run.output.glob("*/items.jsonl")))
    monkeypatch.setattr(item_columns, "read_json_lines", lambda _p: pytest.fail("parsed although copied"))
    second = lbm.build(run.output, SETTINGS)
    assert lbm.render(second, "json") == lbm.render(first, "json")
    assert all(c.interval == "items+seeds" for r in second.rows for c in r.cells.values())


def test_unreadable_and_malformed_items_leave_their_cells_to_the_seeds_with_a_note(tmp_path):
    run = standard_run(tmp_path / "out", seeds=[0, 1], n_items=30)
    run.close()
    pr = run.output / run.evals[("tiny", "pre-trained", "pr", 0)] / "items.jsonl"
    pr.write_text("{not json\n")
    sid = run.output / run.evals[("tiny", "pre-trained", "sid", 1)] / "items.jsonl"
    sid.write_text('{"id": "u0", "stats": {"acc": [1]}}\n')
    board = lbm.build(run.output, SETTINGS)
    row = next(r for r in board.rows if (r.upstream, r.model) == ("tiny", "pre-trained"))
    assert row.cells["pr.per"].interval == "seeds" and row.cells["sid.acc"].interval == "seeds"
    assert any(f"per-item results {pr} could not be read" in n for n in board.notes)
    assert any("tiny / pre-trained / SID ACC: per-item results are malformed" in n for n in board.notes)


def test_a_malformed_metric_leaves_the_files_other_metrics_their_item_intervals(tmp_path):
    run = standard_run(tmp_path / "out", seeds=[0, 1], n_items=30)
    run.close()
    sf = run.output / run.evals[("tiny", "pre-trained", "sf", 0)] / "items.jsonl"
    items = [json.loads(line) for line in sf.read_text().splitlines()]
    _write(sf, [{**it, "stats": {**it["stats"], "cer": "unreadable"}} for it in items])
    board = lbm.build(run.output, SETTINGS)
    row = next(r for r in board.rows if (r.upstream, r.model) == ("tiny", "pre-trained"))
    assert row.cells["sf.cer"].interval == "seeds" and row.cells["sf.f1"].interval == "items+seeds"
    assert any("tiny / pre-trained / SF CER: per-item results are malformed" in n for n in board.notes)
