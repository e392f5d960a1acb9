"""`harness compare`: any two models of a run, with the leaderboard's intervals and paired tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.report import leaderboard as lbm
from harness.report import stats
from harness.report.leaderboard.pairwise import compare
from harness.report.leaderboard.text import method_text
from tests.leaderboard_helpers import FakeRun, standard_run

SETTINGS = lbm.Settings(n_resamples=300, n_permutations=400)
SPEECH_FT, STABLE_FT = "pr · interp alpha=0.25", "pr (Stable-FT)"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FakeRun:
    fake = standard_run(tmp_path_factory.mktemp("pairwise") / "out", seeds=[0, 1, 2], n_items=30, tasks=("pr", "sid"))
    fake.close()
    return fake


def _items(run: FakeRun, upstream: str, model: str, task: str, metric: str) -> stats.ItemStats:
    runs = {}
    for seed in (0, 1, 2):
        path = run.output / run.evals[(upstream, model, task, seed)] / "items.jsonl"
        runs[seed] = [json.loads(line) for line in path.read_text().splitlines()]
    return stats.ItemStats.from_items(runs, metric)


def _same(a: lbm.Comparison, b: lbm.Comparison) -> bool:
    """Equal up to rounding (the leaderboard resamples every model of a column in one product)."""
    numbers, flags = ("delta", "low", "high", "p_items", "p_seeds"), ("significant", "better", "items_test", "n_seeds")
    return (all(getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-9) for f in numbers)
            and all(getattr(a, f) == getattr(b, f) for f in flags))


def test_a_model_against_its_pre_trained_one_is_the_leaderboards_comparison(run):
    board = lbm.build(run.output, SETTINGS)
    row = next(r for r in board.rows if (r.upstream, r.model) == ("tiny", STABLE_FT))
    result = compare(run.output, STABLE_FT, "tiny · pre-trained", SETTINGS)
    assert (result.model, result.baseline) == (f"tiny · {STABLE_FT}", "tiny · pre-trained")
    assert [p.column.key for p in result.columns] == ["pr.per", "sid.acc", "superb.score"]
    for p in result.columns:
        cell = row.cells[p.column.key]
        assert _same(p.comparison, cell.vs_baseline)
        assert (p.model.mean, p.model.low, p.model.high) == (pytest.approx(cell.mean), pytest.approx(cell.low),
                                                             pytest.approx(cell.high))
    speech_ft = next(r for r in board.rows if r.model == SPEECH_FT)
    against_stable = compare(run.output, SPEECH_FT, STABLE_FT, SETTINGS)
    assert all(_same(p.comparison, speech_ft.cells[p.column.key].vs_finetuned) for p in against_stable.columns)


def test_a_pair_the_leaderboard_does_not_make_is_tested_on_its_shared_items(run):
    result = compare(run.output, STABLE_FT, "fbank · pre-trained", SETTINGS)
    per = next(p for p in result.columns if p.column.key == "pr.per")
    ours, theirs = _items(run, "tiny", STABLE_FT, "pr", "per"), _items(run, "fbank", "pre-trained", "pr", "per")
    perm = stats.permutation_test(ours, theirs, n_resamples=SETTINGS.n_permutations, seed=SETTINGS.seed)
    paired = stats.paired_bootstrap(ours, theirs, n_resamples=SETTINGS.n_resamples, seed=SETTINGS.seed)
    assert per.comparison.p_items == pytest.approx(perm.pvalue) and per.comparison.items_test == "permutation"
    assert per.comparison.delta == pytest.approx(ours.value - theirs.value)
    assert (per.comparison.low, per.comparison.high) == (pytest.approx(paired.interval.low),
                                                         pytest.approx(paired.interval.high))
    a = [run.values[("tiny", STABLE_FT, "pr.per", s)] for s in (0, 1, 2)]
    b = [run.values[("fbank", "pre-trained", "pr.per", s)] for s in (0, 1, 2)]
    assert per.comparison.p_seeds == pytest.approx(stats.seed_ttest(a, b))
    assert np.isclose(per.model.mean, np.mean(a)) and np.isclose(per.baseline.mean, np.mean(b))


def test_the_cli_prints_the_table_or_json_and_refuses_unknown_or_ambiguous_labels(run, capsys):
    out = str(run.output)
    assert main(["compare", out, STABLE_FT, "--against", "fbank · pre-trained", "--resamples", "200",
                 "--permutations", "200"]) == 0
    text = capsys.readouterr().out
    assert f"tiny · {STABLE_FT}  vs  fbank · pre-trained" in text
    assert "PR PER ↓" in text and "SUPERB ↑" in text and "p seeds" in text
    assert main(["compare", out, STABLE_FT, "--against", "tiny · pre-trained", "--json", "--resamples", "200",
                 "--permutations", "200"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["column"] for c in data["columns"]] == ["pr.per", "sid.acc", "superb.score"]
    first = data["columns"][0]
    assert first["model"]["interval"] == "items+seeds" and first["p_items_test"] == "permutation"

    for args, expected in ((["nope", "--against", STABLE_FT], "has no evaluated model 'nope'; give one of"),
                           ([STABLE_FT, "--against", "pre-trained"], "names a model of several upstreams"),
                           ([STABLE_FT, "--against", f"tiny · {STABLE_FT}"], "name the same model")):
        assert main(["compare", out, *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err


def test_a_folder_without_a_store_is_one_sentence(tmp_path: Path, capsys):
    assert main(["compare", str(tmp_path), "a", "--against", "b"]) == 2
    assert "holds no results store" in capsys.readouterr().err


def test_adjusted_p_values_are_holm_over_each_table_and_decide_the_marks(run):
    raw = lbm.build(run.output, SETTINGS)
    holm = lbm.build(run.output, lbm.Settings(n_resamples=300, n_permutations=400, adjust="holm"))
    cells = [(r.model, k) for r in raw.rows for k, c in r.cells.items() if c.vs_baseline is not None]
    assert len(cells) > 3

    def cmp(board, model, key):
        return next(r for r in board.rows if r.model == model).cells[key].vs_baseline

    for test in ("p_items", "p_seeds"):
        expected = stats.adjust_pvalues([getattr(cmp(raw, m, k), test) for m, k in cells], "holm")
        assert [getattr(cmp(holm, m, k), test) for m, k in cells] == pytest.approx(expected)
    for m, k in cells:
        adjusted = cmp(holm, m, k)
        assert adjusted.significant == (adjusted.p_items < 0.05 and adjusted.p_seeds < 0.05)
        assert adjusted.delta == cmp(raw, m, k).delta
    assert "Holm-adjusted" in method_text(holm)["compare"] and "adjusted" not in method_text(raw)["compare"]
    pair = compare(run.output, STABLE_FT, "fbank · pre-trained", lbm.Settings(n_resamples=300, n_permutations=400,
                                                                                adjust="bh"))
    plain = compare(run.output, STABLE_FT, "fbank · pre-trained", SETTINGS)
    expected = stats.adjust_pvalues([p.comparison.p_items for p in plain.columns], "bh")
    assert [p.comparison.p_items for p in pair.columns] == pytest.approx(expected)
