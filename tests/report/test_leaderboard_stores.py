"""One leaderboard from several output folders (a study run in pieces): every model with the numbers its
own store gives it, a stage both stores hold read once, and each store's files read from its folder."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.core.errors import HarnessError
from harness.report import leaderboard as lbm
from tests.leaderboard_helpers import BASE_QUALITY, FakeRun, labels, standard_run

SETTINGS = lbm.Settings(n_resamples=200, n_permutations=500)
TASKS = ("pr", "sid")
#: the second store: another upstream and its fine-tuned model, with the same FBank baseline
OTHER = [(labels("small", "pre-trained"), 2.0), (labels("small", "sid · interp alpha=0.25", "sid", "interp", 0.25,
                                                        {"alpha": 0.25}), 5.0), (labels("fbank", "pre-trained"), -10.0)]


def _other_run(output: Path) -> FakeRun:
    run = FakeRun(output, n_items=60)
    keys = {}
    for lab, offset in OTHER:
        keys[lab["upstream"], lab["model"]] = {
            t: run.evaluate(lab, t, t, 0, {m: q + offset if m == "acc" else q - offset
                                           for m, q in BASE_QUALITY[t].items()}) for t in TASKS}
    for lab, _ in OTHER:
        run.score(lab, 0, keys[lab["upstream"], lab["model"]], keys["fbank", "pre-trained"])
    run.close()
    return run


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[FakeRun, FakeRun]:
    root = tmp_path_factory.mktemp("stores")
    first = standard_run(root / "a", [0], n_items=60, tasks=TASKS)
    first.close()
    return first, _other_run(root / "b")


def _cells(board: lbm.Leaderboard) -> dict[tuple, dict]:
    out = {}
    for row in board.rows:
        for col, cell in row.cells.items():
            cmp = cell.vs_baseline
            tested = (None,) * 4 if cmp is None else (cmp.delta, cmp.low, cmp.high, cmp.p_items)
            out[(row.upstream, row.model, col)] = (cell.mean, cell.low, cell.high, cell.interval, *tested)
    return out


def test_several_stores_give_each_model_its_own_stores_numbers(stores):
    first, other = stores
    both = lbm.build([first.output, other.output], SETTINGS)
    alone = {**_cells(lbm.build(first.output, SETTINGS)), **_cells(lbm.build(other.output, SETTINGS))}
    combined = _cells(both)
    assert set(combined) == set(alone)
    for key, value in alone.items():
        assert combined[key] == pytest.approx(value), key
    models = [(r.upstream, r.model) for r in both.rows]
    assert models.count(("fbank", "pre-trained")) == 1  # one stage key in both stores: read once
    assert ("small", "sid · interp alpha=0.25") in models and ("tiny", "pr · interp alpha=0.25") in models
    assert all(c[3] == "items" for c in combined.values())  # per-item results found in each store's folder
    # three fine-tuned models, each against its own store's pre-trained model, in three columns
    assert sum(c[4] is not None for c in combined.values()) == 3 * 3
    assert both.source == f"{first.output}, {other.output}" and not both.notes
    assert f"Results in `{first.output}`, `{other.output}` · 6 models" in lbm.render(both, "md")
    assert lbm.build([first.output, first.output / "."], SETTINGS).folders == [str(first.output)]  # each once


def test_the_cli_reads_several_folders_and_names_a_missing_store(stores, tmp_path):
    first, other = stores
    cmd = [sys.executable, "-m", "harness.cli", "leaderboard", str(first.output), str(other.output),
           "--format", "json", "--resamples", "200", "--permutations", "500"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout)
    assert board["folders"] == [str(first.output), str(other.output)]
    assert harness.leaderboard([first.output, other.output], resamples=200, permutations=500) == board  # Python
    for wrong, sentence in [({"resamples": 10}, "each must be at least 100"), ({"adjust": "x"}, "no p-value adj")]:
        with pytest.raises(HarnessError, match=sentence):
            harness.leaderboard(first.output, **wrong)
    assert {(r["upstream"], r["model"]) for r in board["rows"]} >= {("tiny", "pre-trained"), ("small", "pre-trained")}
    missing = tmp_path / "nowhere"
    done = subprocess.run([*cmd[:5], str(missing)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {missing} holds no results store (results.sqlite); give the output "
                                   "folder of `harness run`.")


def test_seeds_run_in_separate_folders_give_the_leaderboard_of_one_run_with_all_seeds(tmp_path):
    together = standard_run(tmp_path / "together", [0, 1, 2], n_items=40, tasks=TASKS)
    together.close()
    pieces = []
    for seed in (0, 1, 2):
        piece = standard_run(tmp_path / f"seed{seed}", [seed], n_items=40, tasks=TASKS)
        piece.close()
        pieces.append(piece.output)
    one = lbm.build(together.output, SETTINGS)
    split = lbm.build(pieces, SETTINGS)
    assert [(r.upstream, r.model, r.seeds) for r in split.rows] == [(r.upstream, r.model, r.seeds) for r in one.rows]
    expected = _cells(one)
    assert set(_cells(split)) == set(expected)
    for key, value in _cells(split).items():
        assert value == pytest.approx(expected[key]), key
    assert all(r.cells[lbm.SUPERB].interval == "items+seeds" for r in split.rows)


def test_compare_names_models_of_two_folders(stores):
    from harness.report.leaderboard.pairwise import compare

    first, other = stores
    result = compare([first.output, other.output], "small · sid · interp alpha=0.25",
                     "tiny · pr · interp alpha=0.25", SETTINGS)
    by_column = {p.column.key: p for p in result.columns}
    assert set(by_column) == {"pr.per", "sid.acc", lbm.SUPERB}
    for col in ("pr.per", "sid.acc"):
        pair = by_column[col]
        assert pair.model.mean == pytest.approx(other.values[("small", "sid · interp alpha=0.25", col, 0)])
        assert pair.comparison.delta == pytest.approx(pair.model.mean - pair.baseline.mean)
    cmd = [sys.executable, "-m", "harness.cli", "compare", str(first.output), "small · pre-trained", "--against",
           "tiny · pre-trained", "--also", str(other.output), "--resamples", "200", "--permutations", "500"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "small · pre-trained  vs  tiny · pre-trained" in done.stdout


def test_results_read_several_folders_as_one_store_in_the_leaderboards_order(stores, capsys, monkeypatch):
    from harness.cli import main

    first, other = stores
    alone = harness.results(first.output)
    assert {r["output"] for r in alone} == {str(first.output)}
    # the second folder's rows after the first's; FBank's stages, which both hold, once, from the first
    added = [r for r in harness.results(other.output) if r["stage"] not in {a["stage"] for a in alone}]
    assert 0 < len(added) < len(harness.results(other.output))
    assert harness.results([first.output, other.output, first.output / "."]) == alone + added

    monkeypatch.setenv("COLUMNS", "200")  # one line per row
    assert main(["results", str(first.output), str(other.output)]) == 0
    out = capsys.readouterr().out
    model_of = {r["stage"][:8]: (r["upstream"], r["model"]) for r in alone + added}
    shown = [model_of[line.split("│")[1].strip()] for line in out.splitlines()
             if line.startswith("│") and line.split("│")[1].strip() in model_of]
    assert len(shown) == len([r for r in alone + added if r["kind"] != "finetune"])
    in_order = list(dict.fromkeys(shown))  # each model's rows together, the models as the leaderboard lists them
    assert in_order == [(r.upstream, r.model) for r in lbm.build([first.output, other.output], SETTINGS).rows]
    assert len(in_order) == len([key for key, _ in itertools.groupby(shown)])

    assert main(["results", str(first.output), str(other.output), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == alone + added
