"""The leaderboard on ASV's EER and QbE's MTWV: intervals over trials and queries, paired bootstrap p,
and a SUPERB score that includes both resampled over items."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from harness.evaluation.twv import query_gains
from harness.report import leaderboard as lbm
from harness.report import stats
from harness.report.item_stats import GainStats, TrialStats
from harness.report.leaderboard import formats as fmts
from harness.report.leaderboard.html import render_html
from harness.report.leaderboard.text import BOOTSTRAP_P
from tests.leaderboard_helpers import FakeRun, labels, make_items

SETTINGS = lbm.Settings(n_resamples=300, n_permutations=300)
MODELS = [(labels("tiny", "pre-trained"), 0.0), (labels("tiny", "pr (Stable-FT)", "pr", "", 1.0), 1.5),
          (labels("fbank", "pre-trained"), -0.5)]
N_TRIALS, N_QUERIES, N_DOCS = 240, 16, 30


def _trial_items(separation: float, rng: np.random.Generator) -> tuple[list[dict], TrialStats]:
    targets = (np.arange(N_TRIALS) % 4 == 0).astype(int)  # the same trial list for every model
    scores = rng.normal(size=N_TRIALS) + (1.0 + separation) * targets
    groups = tuple(f"spk{i % 12:02d}" for i in range(N_TRIALS))  # the enrolment speakers
    items = [{"target": int(t), "score": float(s), "group": g} for t, s, g in zip(targets, scores, groups, strict=True)]
    return items, TrialStats(tuple(f"e{i} t{i}" for i in range(N_TRIALS)), targets, scores[None, :], (0,), groups)


def _query_items(separation: float, rng: np.random.Generator) -> tuple[list[dict], GainStats]:
    truth = np.zeros((N_QUERIES, N_DOCS), dtype=bool)
    truth[np.arange(N_QUERIES), np.arange(N_QUERIES) % N_DOCS] = True
    truth[np.arange(N_QUERIES), (3 * np.arange(N_QUERIES) + 1) % N_DOCS] = True
    scores = rng.normal(size=truth.shape) + (3.0 + separation) * truth
    kept, gains = query_gains(scores, truth, beta=2.0)
    items = [{"gains": g.tolist()} for g in gains]
    return items, GainStats(tuple(f"q{q}" for q in kept), (gains,))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[FakeRun, dict]:
    fake = FakeRun(tmp_path_factory.mktemp("lbtrials") / "out", n_items=60)
    rng = np.random.default_rng(0)
    truth: dict[tuple[str, str], object] = {}
    keys = {}
    for lab, separation in MODELS:
        asv_items, asv = _trial_items(separation, rng)
        qbe_items, qbe = _query_items(separation, rng)
        truth[(lab["model"] + lab["upstream"], "asv")], truth[(lab["model"] + lab["upstream"], "qbe")] = asv, qbe
        pr_items = make_items("pr", "per", 30.0 - 4 * separation, 60, rng)
        keys[lab["upstream"], lab["model"]] = {
            "asv": fake.evaluate(lab, "asv", "asv", 0, {}, items={"eer": asv_items}, ids=list(asv.ids),
                                 metrics={"eer": asv.value}),
            "qbe": fake.evaluate(lab, "qbe", "qbe", 0, {}, items={"mtwv": qbe_items}, ids=list(qbe.ids),
                                 metrics={"mtwv": qbe.value}),
            "pr": fake.evaluate(lab, "pr", "pr", 0, {}, items={"per": pr_items}),
        }
    for lab, _ in MODELS:
        fake.score(lab, 0, keys[lab["upstream"], lab["model"]], keys["fbank", "pre-trained"])
    fake.close()
    return fake, truth


def _row(board: lbm.Leaderboard, model: str, upstream: str = "tiny") -> lbm.Row:
    return next(r for r in board.rows if (r.upstream, r.model) == (upstream, model))


def test_eer_and_mtwv_cells_get_intervals_over_trials_and_queries(run):
    fake, truth = run
    board = lbm.build(fake.output, SETTINGS)
    assert board.notes == []
    row = _row(board, "pr (Stable-FT)")
    for col, task in (("asv.eer", "asv"), ("qbe.mtwv", "qbe")):
        cell = row.cells[col]
        expected = stats.bootstrap_ci(truth[("pr (Stable-FT)tiny", task)], n_resamples=SETTINGS.n_resamples,
                                      seed=SETTINGS.seed)
        assert cell.interval == "items" and cell.mean == pytest.approx(truth[("pr (Stable-FT)tiny", task)].value)
        assert (cell.low, cell.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert row.cells["asv.eer"].n_items == N_TRIALS
    assert row.cells["superb.score"].interval == "items"  # every task behind it has per-item results


def test_eer_and_mtwv_comparisons_carry_the_paired_bootstraps_p(run):
    fake, truth = run
    board = lbm.build(fake.output, SETTINGS)
    row = _row(board, "pr (Stable-FT)")
    for col, task in (("asv.eer", "asv"), ("qbe.mtwv", "qbe")):
        cmp = row.cells[col].vs_baseline
        paired = stats.paired_bootstrap(truth[("pr (Stable-FT)tiny", task)], truth[("pre-trainedtiny", task)],
                                        n_resamples=SETTINGS.n_resamples, seed=SETTINGS.seed)
        assert cmp.items_test == "bootstrap" and cmp.p_items == pytest.approx(paired.pvalue)
        assert (cmp.delta, cmp.low, cmp.high) == (pytest.approx(paired.delta), pytest.approx(paired.interval.low),
                                                  pytest.approx(paired.interval.high))
    assert row.cells["pr.per"].vs_baseline.items_test == "permutation"
    superb = row.cells["superb.score"].vs_baseline
    assert superb.items_test == "bootstrap" and superb.p_items is not None

    page = render_html(board)
    assert "p (items, bootstrap) = " in page and "(bootstrap)</span>" in page
    markdown = fmts.render_markdown(board)
    assert "(bootstrap)" in markdown and BOOTSTRAP_P.strip() in markdown
    lines = {(r["model"], r["column"]): r for r in csv.DictReader(io.StringIO(fmts.render_csv(board)))}
    assert lines[("pr (Stable-FT)", "asv.eer")]["p_items_test"] == "bootstrap"
    assert lines[("pr (Stable-FT)", "pr.per")]["p_items_test"] == "permutation"
    assert lines[("pre-trained", "asv.eer")]["p_items_test"] == ""


def test_the_bootstrap_legend_appears_only_where_a_p_comes_from_it(tmp_path):
    from tests.leaderboard_helpers import standard_run

    plain = standard_run(tmp_path / "out", seeds=[0], n_items=20, tasks=("pr",))
    plain.close()
    assert BOOTSTRAP_P.strip() not in fmts.render_markdown(lbm.build(plain.output, SETTINGS))


def test_too_few_enrolment_speakers_are_drawn_as_single_trials_with_a_note(tmp_path):
    fake = FakeRun(tmp_path / "out")
    rng = np.random.default_rng(1)
    items, trials = _trial_items(0.0, rng)
    few = [{**it, "group": f"spk{k % 3}"} for k, it in enumerate(items)]
    fake.evaluate(labels("tiny", "pre-trained"), "asv", "asv", 0, {}, items={"eer": few}, ids=list(trials.ids),
                  metrics={"eer": trials.value})
    fake.close()
    board = lbm.build(fake.output, SETTINGS)
    cell = board.rows[0].cells["asv.eer"]
    alone = stats.bootstrap_ci(trials.ungrouped(), n_resamples=SETTINGS.n_resamples, seed=SETTINGS.seed)
    assert (cell.low, cell.high) == (pytest.approx(alone.low), pytest.approx(alone.high))
    assert any("only 3 groups" in n and "too few to draw whole" in n for n in board.notes)


def test_models_whose_trials_are_grouped_differently_are_not_paired_over_trials(tmp_path):
    fake = FakeRun(tmp_path / "out")
    rng = np.random.default_rng(2)
    for lab, separation in MODELS[:2]:
        items, trials = _trial_items(separation, rng)
        if lab["finetune"] != "none":  # another grouping of the same trials
            items = [{**it, "group": f"other{k % 11}"} for k, it in enumerate(items)]
        fake.evaluate(lab, "asv", "asv", 0, {}, items={"eer": items}, ids=list(trials.ids),
                      metrics={"eer": trials.value})
    fake.close()
    board = lbm.build(fake.output, SETTINGS)
    cell = _row(board, "pr (Stable-FT)").cells["asv.eer"]
    assert cell.interval == "items" and cell.vs_baseline.p_items is None  # a seed comparison only


def test_compare_marks_the_bootstrap_p_of_an_eer_and_an_mtwv(run):
    from harness.report.leaderboard.pairwise import compare

    fake, _ = run
    result = compare(fake.output, "pr (Stable-FT)", "tiny · pre-trained", SETTINGS)
    tests = {p.column.key: p.comparison.items_test for p in result.columns}
    assert tests == {"pr.per": "permutation", "qbe.mtwv": "bootstrap", "asv.eer": "bootstrap",
                     "superb.score": "bootstrap"}
    marked = {line[0]: line[5].endswith(" †") for line in result.table_rows()}
    assert marked == {"PR PER ↓": False, "QBE MTWV ↑": True, "ASV EER ↓": True, "SUPERB ↑": True}
