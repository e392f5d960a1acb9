"""A store that outlived a recipe change: the newest evaluation of each model, downstream and seed is
shown, and models evaluated with different settings (a rerun that did not finish) are not compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import leaderboard as lbm
from tests.leaderboard_helpers import MODELS, FakeRun, standard_run

SETTINGS = lbm.Settings(n_resamples=200, n_permutations=500)
SPEECH_FT = "pr · interp alpha=0.25"
NEW = {"steps": 50}


def _row(board: lbm.Leaderboard, model: str, upstream: str = "tiny") -> lbm.Row:
    return next(r for r in board.rows if (r.upstream, r.model) == (upstream, model))


def _rerun_sid(run: FakeRun, models: list[tuple[str, str]], seeds: list[int], score: bool = True) -> None:
    """SID evaluated again with ``NEW`` (and those models scored again) for some (upstream, model) and seeds."""
    for seed in seeds:
        for lab, offset in MODELS:
            if (lab["upstream"], lab["model"]) in models:
                run.evaluate(lab, "sid", "sid", seed, {"acc": 55.0 + offset}, params=NEW)
        if not score:
            continue
        fbank = {t: run.evals[("fbank", "pre-trained", t, seed)] for t in ("pr", "sid")}
        for lab, _ in MODELS:
            if (lab["upstream"], lab["model"]) in models:
                own = {t: run.evals[(lab["upstream"], lab["model"], t, seed)] for t in ("pr", "sid")}
                run.score(lab, seed, own, fbank)


@pytest.fixture()
def run(tmp_path) -> FakeRun:
    return standard_run(tmp_path / "out", [0], n_items=60, tasks=("pr", "sid"))


def test_a_finished_rerun_shows_the_newest_results_and_compares_them(run):
    _rerun_sid(run, [(lab["upstream"], lab["model"]) for lab, _ in MODELS], [0])
    run.close()
    board = lbm.build(run.output, SETTINGS)
    for lab, _ in MODELS:
        row = _row(board, lab["model"], lab["upstream"])
        assert row.cells["sid.acc"].mean == pytest.approx(run.values[(lab["upstream"], lab["model"], "sid.acc", 0)])
        assert row.cells[lbm.SUPERB].mean == pytest.approx(
            run.values[(lab["upstream"], lab["model"], "superb.score", 0)])
        assert row.cells[lbm.SUPERB].interval == "items"  # recomputed from the newest SID items
    assert _row(board, SPEECH_FT).cells["sid.acc"].vs_baseline is not None
    assert any("8 finished stages of this store were replaced by a later run" in n for n in board.notes)
    assert not any("left out" in n for n in board.notes)


def test_models_evaluated_with_different_settings_are_not_compared(run):
    _rerun_sid(run, [("tiny", SPEECH_FT)], [0])  # the rerun stopped after one model
    run.close()
    board = lbm.build(run.output, SETTINGS)
    row = _row(board, SPEECH_FT)
    assert row.cells["sid.acc"].mean == pytest.approx(run.values[("tiny", SPEECH_FT, "sid.acc", 0)])
    assert row.cells["sid.acc"].vs_baseline is None and row.cells["sid.acc"].vs_finetuned is None
    assert row.cells[lbm.SUPERB].vs_baseline is None
    assert row.cells["pr.per"].vs_baseline is not None and row.cells["pr.per"].vs_finetuned is not None
    assert _row(board, "pr (Stable-FT)").cells["sid.acc"].vs_baseline is not None  # both on the old setting
    notes = "\n".join(board.notes)
    quoted = "SID ACC: 1 comparison left out, between models evaluated with different settings (steps 50 and default)"
    assert quoted + "; rerun the recipe" in notes
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`{quoted}`" in " ".join(readme.split())  # the README quotes it
    assert "SUPERB: 1 comparison left out, between models evaluated with different settings (sid: steps 50 and " \
           "default)" in notes
    assert "2 finished stages of this store were replaced" in notes
    assert "its SUPERB score was computed from other evaluations" not in notes  # scored again


def test_seeds_evaluated_with_different_settings_are_named(tmp_path):
    run = standard_run(tmp_path / "out", [0, 1], n_items=60, tasks=("pr", "sid"))
    _rerun_sid(run, [("tiny", "pre-trained")], [1], score=False)
    run.close()
    board = lbm.build(run.output, SETTINGS)
    cell = _row(board, "pre-trained").cells["sid.acc"]
    assert cell.per_seed[1] == pytest.approx(run.values[("tiny", "pre-trained", "sid.acc", 1)])
    assert any(n.startswith("tiny / pre-trained / SID ACC: its seeds were evaluated with different settings "
                            "(steps default and 50)") for n in board.notes)
    assert not any(n.startswith("fbank") for n in board.notes)  # re-evaluated on neither seed
    assert "tiny / pre-trained: its SUPERB score was computed from other evaluations of sid than the table " \
           "shows; rerun the recipe to score the newer ones." in board.notes  # the rerun stopped before scoring
    # its seed 1 differs from every fine-tuned model's seed 1; Speech-FT and Stable-FT still compare
    assert any(n.startswith("SID ACC: 2 comparisons left out") for n in board.notes)
    assert _row(board, SPEECH_FT).cells["sid.acc"].vs_baseline is None
    assert _row(board, SPEECH_FT).cells["sid.acc"].vs_finetuned is not None


def test_results_mark_the_replaced_stages_and_the_run_summary_shows_each_score_once(run, capsys):
    from rich.console import Console

    from harness import results
    from harness.cli.results_cmd import print_scores

    old = {lab["upstream"] + lab["model"]: run.evals[(lab["upstream"], lab["model"], "sid", 0)] for lab, _ in MODELS}
    _rerun_sid(run, [("tiny", SPEECH_FT)], [0])
    run.close()
    rows = results(run.output)
    stale = {r["stage"] for r in rows if not r["current"]}
    scores = [r for r in rows if r["metric"] == "superb.score"]
    assert old["tiny" + SPEECH_FT] in stale and len(stale) == 2  # its SID evaluation and its score
    assert len(scores) == len(MODELS) + 1 and sum(r["current"] for r in scores) == len(MODELS)
    print_scores(run.output, Console(width=200))
    printed = capsys.readouterr().out
    assert printed.count(SPEECH_FT) == 1 and printed.count("pre-trained") == 2  # one row per model


def test_compare_says_why_a_column_is_missing(run, capsys):
    from harness.cli import main

    _rerun_sid(run, [("tiny", SPEECH_FT)], [0])
    run.close()
    assert main(["compare", str(run.output), SPEECH_FT, "--against", "tiny · pre-trained", "--resamples", "200",
                 "--permutations", "500"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "PR PER" in shown and "SID ACC " not in shown
    assert "Note: SID ACC: 1 comparison left out, between models evaluated with different settings" in shown


def test_several_folders_mark_a_stage_replaced_in_another_folder_as_the_leaderboard_does(run, tmp_path):
    """A folder copied before a rerun, read with the folder that ran it: the rerun's stages are current."""
    import shutil

    from harness import results
    from harness.core.store import Store

    run.close()
    before = tmp_path / "before"
    shutil.copytree(run.output, before)
    run.store = Store(run.output)
    _rerun_sid(run, [("tiny", SPEECH_FT)], [0])
    run.close()
    rows = results([before, run.output])
    stale = {r["stage"] for r in rows if not r["current"]}
    assert stale == {r["stage"] for r in results(run.output) if not r["current"]} and len(stale) == 2
    assert {r["output"] for r in rows if r["stage"] in stale} == {str(before)}  # read from the first folder
    current = {(r["model"], r["metric"]): r["value"] for r in rows if r["current"] and r["upstream"] == "tiny"}
    board = lbm.build([before, run.output], SETTINGS)
    assert current[SPEECH_FT, "sid.acc"] == pytest.approx(_row(board, SPEECH_FT).cells["sid.acc"].mean)
