"""The paper's reported numbers: the scorer gives each reported SUPERB score from its row's metrics, every row
names models the shipped recipes make, and `harness leaderboard --paper` sets them beside a run's."""

from __future__ import annotations

import json
import math

import pytest

import harness
from harness.cli import main
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager
from harness.evaluation import scoring
from harness.report import leaderboard as lbm
from harness.report.leaderboard.model import SUPERB, Cell, Column, Leaderboard, Row, Settings
from harness.report.leaderboard.paper import model_key, paper_matches, paper_row, reproducing_models
from harness.report.leaderboard.rows import row_of
from harness.report.paper_tables import ROWS, TEN_TASKS
from tests.leaderboard_helpers import standard_run
from tests.test_recipes import DATA_VARS, RECIPES


def _score(row) -> float:
    metrics = {k: v for k, v in row.values.items() if k != SUPERB}
    return scoring.superb_score(metrics, scoring.reference_table("superb-2024", {}, {}), strict=False).score


def test_every_reported_superb_score_follows_from_its_rows_metrics_but_one():
    off = {r.label: round(_score(r) - r.values[SUPERB], 2) for r in ROWS if abs(_score(r) - r.values[SUPERB]) > 0.006}
    # Table 1 reports 805.33 for Stable-FT of ASR on LibriSpeech; its Table 2 metrics give 805.53
    assert off == {"Table 2: ASR on LibriSpeech, Stable-FT": 0.2}
    assert len(ROWS) == 51 and len({r.label for r in ROWS}) == len(ROWS)


def test_table_9s_sweep_is_pc_on_timit_as_the_alpha_sweep_recipe_runs_it():
    by_label = {r.label: r.values for r in ROWS}
    assert by_label["Table 9: PC on TIMIT, α = 0.25"] == by_label["Table 2: PC on TIMIT, Speech-FT"]
    assert by_label["Table 9: PC on TIMIT, α = 1"] == by_label["Table 2: PC on TIMIT, Stable-FT"]
    recipe = load_recipe(RECIPES / "alpha_sweep.yaml", default_manager(), allow_unset=True)
    (entry,) = recipe.entries["finetune"].values()
    (variant,) = entry.variants
    assert (entry.name, variant.params.task, variant.params.corpus) == ("pc_timit", "pc", "timit")


def _planned_rows(name: str) -> list[Row]:
    manager = default_manager()
    plan = build_plan(load_recipe(RECIPES / name, manager, allow_unset=True), manager)
    return [row_of(s.labels) for s in plan.stages.values() if s.kind == "evaluate"]


def test_every_model_a_row_names_is_one_the_shipped_recipes_make(monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    made = set()
    for name in ("speech_ft_supervised.yaml", "continued_pretraining.yaml", "multitask.yaml", "upstreams.yaml",
                 "ablations.yaml", "alpha_sweep.yaml", "superb_full.yaml"):
        made |= {model_key(r) for r in _planned_rows(name)}
    named = {m for r in ROWS for m in r.models}
    assert named - made == set()
    # and the paper's fine-tuned models of those recipes are all matched (FBank's rows are no paper row)
    unmatched = {model_key(r) for name in ("speech_ft_supervised.yaml", "multitask.yaml")
                 for r in _planned_rows(name) if paper_row(r) is None}
    assert unmatched == set()


def _cell(value: float) -> Cell:
    return Cell(value, value - 1.0, value + 1.0, "items", {0: value}, 100)


def _board(reference: str, rows: list[Row], keys: tuple[str, ...]) -> Leaderboard:
    columns = [Column(k, k.split(".")[0], k.split(".")[0], k.split(".")[1], "lower") for k in keys]
    return Leaderboard("x", columns, rows, Settings(), reference)


def _row(upstream, finetune, merge, alpha, values, merge_params=None, baseline=False) -> Row:
    row = Row(upstream, f"{finetune} {merge} {alpha}", finetune, merge, merge_params, alpha, [0], baseline)
    row.cells = {k: _cell(v) for k, v in values.items()}
    return row


def test_models_are_matched_by_their_names_and_set_beside_the_paper_metric_by_metric():
    four = ("pr.per", "sid.acc", "er.acc", "sf.f1", "sf.cer", SUPERB)
    speech_ft = {**dict(zip(four[:-1], (4.0, 82.0, 65.0, 88.0, 24.5), strict=True)), SUPERB: 880.0}
    rows = [
        _row("hubert_base", "none", "", 0.0, speech_ft, baseline=True),
        _row("hubert_base", "pc_timit", "speech_ft", 0.25, speech_ft, {"alpha": 0.25}),
        _row("hubert_base", "pc_timit_l2[l2_lambda=0.001]", "", 1.0, speech_ft),
        _row("hubert_base", "pr+sid", "ties_merge", None, speech_ft, {"density": 0.2, "lambda": 0.25}),
        _row("hubert_base", "pc_timit", "speech_ft", 0.5, speech_ft, {"alpha": 0.5}),  # no paper row
        _row("tiny", "pc_timit", "speech_ft", 0.25, speech_ft, {"alpha": 0.25}),  # another upstream
    ]
    matches = paper_matches(_board("superb-2024", rows, four))
    assert [m.row for m in matches] == ["Table 2: Pre-trained", "Table 2: PC on TIMIT, Speech-FT",
                                        "Table 7: PC on TIMIT, Regularization", "Table 4: TIES merge, Speech-FT"]
    pc = matches[1]
    assert [v.column for v in pc.values] == list(four)
    assert [(v.paper, round(v.delta, 2), v.inside) for v in pc.values] == [
        (4.76, -0.76, True), (81.78, 0.22, True), (65.48, -0.48, True), (88.65, -0.65, True), (24.05, 0.45, True),
        (877.66, 2.34, False)]
    # the SUPERB score only against the paper's reference, and on the same tasks
    assert SUPERB not in {v.column for v in paper_matches(_board("measured", rows, four))[1].values}
    fewer = [_row("hubert_base", "pc_timit", "speech_ft", 0.25, {k: speech_ft[k] for k in ("pr.per", SUPERB)})]
    assert [v.column for v in paper_matches(_board("superb-2024", fewer, ("pr.per", SUPERB)))[0].values] == ["pr.per"]


def test_a_model_on_every_superb_task_is_set_beside_table_16():
    keys = (*TEN_TASKS, SUPERB)
    row = _row("hubert_base", "pc_timit", "speech_ft", 0.25, {k: 1.0 for k in keys}, {"alpha": 0.25})
    (match,) = paper_matches(_board("superb-2024", [row], keys))
    assert match.row == "Table 16: PC on TIMIT, ten tasks, Speech-FT" and len(match.values) == 12
    assert next(v for v in match.values if v.column == "qbe.mtwv").paper == 0.0883


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    run = standard_run(tmp_path_factory.mktemp("paper") / "out", seeds=[0], n_items=30)
    run.close()
    return run.output


def test_the_cli_adds_the_section_says_when_nothing_matches_and_refuses_other_formats(toy_store, tmp_path, capsys):
    fast = ["--resamples", "100", "--permutations", "100"]
    assert main(["leaderboard", str(toy_store), "--paper", *fast]) == 0
    text = capsys.readouterr().out
    assert "## Against the paper's numbers" in text and "No model here corresponds to a row of the paper" in text
    assert main(["leaderboard", str(toy_store), "--paper", "--format", "json", *fast]) == 0
    assert json.loads(capsys.readouterr().out)["paper"] == []
    assert main(["leaderboard", str(toy_store), "--paper", "--format", "html", "--out", str(tmp_path / "b.html"),
                 *fast]) == 0
    assert 'id="paper-section"' in (tmp_path / "b.html").read_text()
    assert main(["leaderboard", str(toy_store), "--paper", "--format", "csv"]) == 2
    assert capsys.readouterr().err.strip().endswith("--paper adds a section to md, html, json, latex; csv holds the "
                                                    "tables only.")
    plain = lbm.build(toy_store, Settings(n_resamples=100, n_permutations=100))
    assert "paper" not in json.loads(lbm.render(plain, "json"))
    assert harness.leaderboard(toy_store, resamples=100, permutations=100, paper=True)["paper"] == []


def test_a_matched_model_is_a_row_of_the_section_in_every_format():
    four = ("pr.per", "sid.acc", "er.acc", "sf.f1", "sf.cer", SUPERB)
    row = _row("hubert_base", "sid_vox", "speech_ft", 1.0, dict(zip(four, (29.0, 88.0, 60.0, 77.0, 43.0, 650.0),
                                                                     strict=True)), {"alpha": 1.0})
    board = _board("superb-2024", [row], four)
    board.paper = paper_matches(board)
    md = lbm.render(board, "md")
    assert ("| hubert_base | sid_vox speech_ft 1.0 | Table 2: SID on VoxCeleb1, Stable-FT | 29.00 (29.08, -0.08) ✓ |"
            in md)
    assert "650.00 (651.42, -1.42) |" in md
    data = json.loads(lbm.render(board, "json"))["paper"][0]
    assert data["row"] == "Table 2: SID on VoxCeleb1, Stable-FT"
    assert math.isclose(data["values"][0]["delta"], -0.08) and data["values"][0]["inside"] is True
    assert "Table 2: SID on VoxCeleb1, Stable-FT" in lbm.render(board, "html")
    latex = lbm.render(board, "latex")
    assert r"\label{tab:paper}" in latex
    assert (r"hubert\_base & sid\_vox speech\_ft 1.0 & Table 2: SID on VoxCeleb1, Stable-FT & 29.00\dag{} "
            r"{\scriptsize(29.08, $-$0.08)}" in latex)
    assert "650.00 {\\scriptsize(651.42, $-$1.42)}" in latex


def test_a_run_of_a_shipped_recipe_counts_the_models_that_reproduce_the_paper(monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    manager = default_manager()

    def labels(name: str) -> list[dict]:
        plan = build_plan(load_recipe(RECIPES / name, manager, allow_unset=True), manager)
        return [s.labels for s in plan.stages.values() if s.kind == "score"]

    # the pre-trained model and Speech-FT and Stable-FT of each of the eight tasks; the demo's models none
    assert reproducing_models(labels("speech_ft_supervised.yaml")) == 17
    assert reproducing_models(labels("alpha_sweep.yaml")) == 6
    assert reproducing_models(labels("demo.yaml")) == 0
