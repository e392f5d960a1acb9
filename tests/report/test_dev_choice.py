"""Choosing a setting on the dev sets: each model's SUPERB score of its dev results against the reference of its
test score (FBank's own dev results for ``measured``), mean over seeds, against a computation by hand; per sweep
(a merge's α, a fine-tuning entry's swept parameter) the value of the highest dev score; the section in markdown,
HTML and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import leaderboard as lbm
from harness.report.leaderboard.dev_choice import dev_values
from harness.report.leaderboard.figures import alpha_series
from tests.leaderboard_helpers import BASE_QUALITY, MODELS, TASK_METRICS, FakeRun, labels

SETTINGS = lbm.Settings(n_resamples=100, n_permutations=100)
TASKS = ("pr", "sid", "sf")
SEEDS = (0, 1)
#: besides the standard models: two of a swept L2 penalty (unmerged) and two TIES merges of a swept lambda
SWEPT = [(labels("tiny", f"pr[l2_lambda={w}] (Stable-FT + L2)", f"pr[l2_lambda={w}]", "", 1.0), offset)
         for w, offset in (("0.001", 4.0), ("0.01", 1.0))]
SWEPT += [(labels("tiny", f"pr+sid · ties lambda={w}", "pr+sid", "ties", None, {"lambda": w}), offset)
          for w, offset in ((0.25, 2.0), (1.0, 5.0))]
#: dev value of each task's metrics, before a model's shift: the test results favour α = 0.25 (MODELS' offsets),
#: the penalty 0.001 and TIES's lambda 1; the dev results α = 1, the penalty 0.01 and lambda 0.25
DEV = {"pr": {"per": 40.0}, "sid": {"acc": 50.0}, "sf": {"f1": 60.0, "cer": 45.0}}
DEV_SHIFT = {"pre-trained": 0.0, "pr · interp alpha=0.25": 2.0, "pr (Stable-FT)": 5.0,
             "pr[l2_lambda=0.001] (Stable-FT + L2)": 1.0, "pr[l2_lambda=0.01] (Stable-FT + L2)": 3.0,
             "pr+sid · ties lambda=0.25": 4.0, "pr+sid · ties lambda=1.0": 2.0}
FBANK_DEV_SHIFT = -12.0


def _dev(model: str, upstream: str, task: str, seed: int) -> dict[str, float]:
    shift = FBANK_DEV_SHIFT if upstream == "fbank" else DEV_SHIFT[model]
    return {m: v - (shift + seed) if TASK_METRICS[task][m] == "lower" else v + shift + seed
            for m, v in DEV[task].items()}


def _run(output: Path, without_dev: tuple[str, str, int] | None = None) -> FakeRun:
    """Pre-trained, Speech-FT (α = 0.25), Stable-FT and FBank on PR, SID and SF over two seeds, with dev values
    (none for the evaluation ``without_dev`` names: model, task, seed)."""
    run = FakeRun(output, n_items=40)
    for seed in SEEDS:
        keys = {}
        for lab, offset in MODELS + SWEPT:
            keys[lab["model"], lab["upstream"]] = {
                task: run.evaluate(lab, task, task, seed,
                                   {m: q - offset if TASK_METRICS[task][m] == "lower" else q + offset
                                    for m, q in BASE_QUALITY[task].items()},
                                   dev=None if (lab["model"], task, seed) == without_dev
                                   else _dev(lab["model"], lab["upstream"], task, seed))
                for task in TASKS}
        for lab, _ in MODELS + SWEPT:
            run.score(lab, seed, keys[lab["model"], lab["upstream"]], keys["pre-trained", "fbank"])
    run.close()
    return run


def _by_hand(model: str) -> float:
    """The dev SUPERB score against FBank's dev values: per metric 1000 · (dev − FBank) / (ideal − FBank), the
    ideal 0 (error rates) or 100; metrics averaged per task, tasks averaged, seeds averaged."""
    per_seed = []
    for seed in SEEDS:
        tasks = []
        for task in TASKS:
            mine, fbank = _dev(model, "tiny", task, seed), _dev("", "fbank", task, seed)
            ideal = {m: 0.0 if TASK_METRICS[task][m] == "lower" else 100.0 for m in mine}
            tasks.append(sum(1000 * (mine[m] - fbank[m]) / (ideal[m] - fbank[m]) for m in mine) / len(mine))
        per_seed.append(sum(tasks) / len(tasks))
    return sum(per_seed) / len(per_seed)


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> lbm.Leaderboard:
    return lbm.build(_run(tmp_path_factory.mktemp("alpha") / "out").output, SETTINGS)


def test_each_models_dev_score_and_the_setting_each_sweep_chooses(board):
    rows = {(r.upstream, r.model): r for r in board.rows}
    for model in DEV_SHIFT:
        assert rows["tiny", model].dev_superb == pytest.approx(_by_hand(model), rel=1e-9)
    assert rows["fbank", "pre-trained"].dev_superb == pytest.approx(0.0, abs=1e-9)
    alpha, ties, penalty = board.sweep_choices
    assert (alpha.upstream, alpha.sweep, alpha.parameter) == ("tiny", "pr (interp)", "α")
    assert alpha.values == [0.0, 0.25, 1.0]
    assert alpha.models == ["pre-trained", "pr · interp alpha=0.25", "pr (Stable-FT)"]
    assert alpha.test == [rows["tiny", m].cells[lbm.SUPERB].mean for m in alpha.models]
    assert max(alpha.test) == alpha.test[1]  # the test results favour Speech-FT ...
    assert alpha.chosen == 1.0  # ... the dev results Stable-FT, and the choice follows the dev results
    assert (penalty.sweep, penalty.parameter, penalty.values) == ("pr", "l2_lambda", ["0.001", "0.01"])
    assert penalty.test[0] > penalty.test[1] and penalty.chosen == "0.01"
    assert (ties.sweep, ties.parameter, ties.values) == ("pr+sid (ties)", "lambda", ["0.25", "1.0"])
    assert ties.test[1] > ties.test[0] and ties.chosen == "0.25"


def test_the_section_in_markdown_html_and_json(board):
    md = lbm.render(board, "md")
    assert "\n## Settings chosen on the dev sets\n" in md
    stable = f"{_by_hand('pr (Stable-FT)'):.2f}"
    assert "| tiny | pr (interp) | α = 1 | pr (Stable-FT) | " + stable in md and md.count(" ✓ |") == 3
    assert "| tiny | pr | l2_lambda = 0.01 | pr[l2_lambda=0.01] (Stable-FT + L2) | " in md
    page = lbm.render(board, "html")
    assert 'id="sweep-section"' in page and page.count("✓") >= 2
    (series,) = alpha_series(board)  # the α plot rings the α chosen on the dev sets
    assert series.chosen == 1.0 and "A ring marks the α chosen on the dev sets." in page
    latex = lbm.render(board, "latex")
    table = latex[latex.index(r"\label{tab:dev-choice}"):]
    assert "✓" not in latex and "Bold: the setting with the highest dev score" in latex
    chosen = [line for line in table.splitlines() if line.startswith(r"\textbf{tiny}")]
    assert len(chosen) == 3 and r"\textbf{$\alpha$ = 1}" in chosen[0]
    alpha, _, penalty = json.loads(lbm.render(board, "json"))["sweep_choices"]
    assert alpha["chosen"] == 1.0 and alpha["dev"][2] == pytest.approx(_by_hand("pr (Stable-FT)"))
    assert penalty["chosen"] == "0.01"


def test_an_evaluation_without_a_dev_value_leaves_its_model_unscored_and_nothing_chosen(tmp_path):
    board = lbm.build(_run(tmp_path / "out", without_dev=("pr · interp alpha=0.25", "sid", 1)).output, SETTINGS)
    alpha, _, penalty = board.sweep_choices
    assert alpha.dev[1] is None and alpha.dev[0] == pytest.approx(_by_hand("pre-trained"))
    assert alpha.chosen is None and penalty.chosen == "0.01"
    assert "| tiny | pr (interp) | α = 0.25 | pr · interp alpha=0.25 | – |" in lbm.render(board, "md")


def test_dev_values_come_from_extra_dev_or_the_layer_chosen_on_dev():
    assert dev_values({"task": "pr", "extra": {"dev": {"per": 12.5}}}) == {"pr.per": 12.5}
    chosen = {"best_layer": 1, "layers": {"layer0": {"mtwv": 0.1}, "layer1": {"mtwv": 0.25}}}
    assert dev_values({"task": "qbe", "extra": chosen}) == {"qbe.mtwv": 0.25}  # QbE: its layer chosen on dev
    per_condition = {"best_layer": {"within": 0}, "layers": {"layer0": {"within": 3.0}}}
    assert dev_values({"task": "abx", "extra": per_condition}) == {}  # one layer per condition: not one dev value
    assert dev_values({"task": "sid", "extra": {}}) == {}
    folds = [{"fold": 0, "acc": 60.0, "dev": {"acc": 50.0}}, {"fold": 1, "acc": 64.0, "dev": {"acc": 54.0}}]
    assert dev_values({"task": "er", "extra": {"dev": {"acc": 52.0}, "folds": folds}}) == {"er.acc": 52.0}
    last_only = [{"fold": 0, "acc": 60.0}, {"fold": 1, "acc": 64.0}]  # stored before each fold kept its dev value
    assert dev_values({"task": "er", "extra": {"dev": {"acc": 54.0}, "folds": last_only}}) == {}
