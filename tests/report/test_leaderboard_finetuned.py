"""Speech-FT against Stable-FT: each merge with 0 < α < 1 against the α = 1 model of its upstream, fine-tuning
and merge entry, in the view model and every format."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from scipy import stats as sps

from harness.report import leaderboard as lbm
from harness.report import stats
from harness.report.leaderboard import formats as fmts
from harness.report.leaderboard.html import render_html
from harness.report.leaderboard.rows import finetuned_pairs
from tests.leaderboard_helpers import FakeRun, labels

SETTINGS = lbm.Settings(n_resamples=300, n_permutations=1000)
SEEDS = [0, 1, 2]
QUALITY = {"pr": {"per": 30.0}, "sid": {"acc": 70.0}}
#: (labels, quality offset: positive is better)
MODELS = [
    (labels("fbank", "pre-trained"), -10.0),
    (labels("tiny", "pre-trained"), 0.0),
    (labels("tiny", "pr · lin alpha=0.25", "pr", "lin", 0.25, {"alpha": 0.25}), 6.0),
    (labels("tiny", "pr · lin alpha=1.0", "pr", "lin", 1.0, {"alpha": 1.0}), -4.0),
    (labels("tiny", "pr (Stable-FT)", "pr", "", 1.0), 9.0),  # unmerged: the merged α = 1 sibling comes first
    (labels("tiny", "pr · other alpha=0.5", "pr", "other", 0.5, {"alpha": 0.5}), 2.0),
    (labels("tiny", "sid · lin alpha=0.25", "sid", "lin", 0.25, {"alpha": 0.25}), 1.0),  # no α = 1 sibling
]
SPEECH_FT = "pr · lin alpha=0.25"
STABLE_FT = "pr · lin alpha=1.0"


def _run(output, models) -> FakeRun:
    run = FakeRun(output, n_items=60)
    for seed in SEEDS:
        keys = {}
        for lab, offset in models:
            keys[(lab["upstream"], lab["model"])] = {
                task: run.evaluate(lab, task, task, seed, {m: q + offset if m == "acc" else q - offset
                                                            for m, q in metrics.items()})
                for task, metrics in QUALITY.items()}
        for lab, _ in models:
            run.score(lab, seed, keys[(lab["upstream"], lab["model"])], keys[("fbank", "pre-trained")])
    run.close()
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FakeRun:
    return _run(tmp_path_factory.mktemp("ft") / "out", MODELS)


@pytest.fixture(scope="module")
def board(run) -> lbm.Leaderboard:
    return lbm.build(run.output, SETTINGS)


def _row(board: lbm.Leaderboard, model: str, upstream: str = "tiny") -> lbm.Row:
    return next(r for r in board.rows if (r.upstream, r.model) == (upstream, model))


def _items(run: FakeRun, model: str, task: str, metric: str) -> stats.ItemStats:
    per_seed = {}
    for seed in SEEDS:
        path = run.output / run.evals[("tiny", model, task, seed)] / "items.jsonl"
        per_seed[seed] = [json.loads(line) for line in path.read_text().splitlines()]
    return stats.ItemStats.from_items(per_seed, metric)


def test_speech_ft_against_its_alpha_1_sibling_matches_independent_computations(board, run):
    row = _row(board, SPEECH_FT)
    for col, task, metric in (("pr.per", "pr", "per"), ("sid.acc", "sid", "acc")):
        cmp = row.cells[col].vs_finetuned
        ours = [run.values[("tiny", SPEECH_FT, col, s)] for s in SEEDS]
        stable = [run.values[("tiny", STABLE_FT, col, s)] for s in SEEDS]
        assert cmp.delta == pytest.approx(np.mean(ours) - np.mean(stable))
        assert cmp.p_seeds == pytest.approx(sps.ttest_rel(ours, stable).pvalue)
        perm = stats.permutation_test(_items(run, SPEECH_FT, task, metric), _items(run, STABLE_FT, task, metric),
                                      n_resamples=SETTINGS.n_permutations, seed=SETTINGS.seed)
        assert cmp.p_items == pytest.approx(perm.pvalue)
        assert cmp.low < cmp.delta < cmp.high and cmp.n_seeds == 3
        assert cmp.significant == (perm.pvalue < 0.05 and cmp.p_seeds < 0.05)
        assert cmp.better == ((cmp.delta < 0) if col == "pr.per" else (cmp.delta > 0))
    superb = row.cells["superb.score"].vs_finetuned
    ours = [run.values[("tiny", SPEECH_FT, "superb.score", s)] for s in SEEDS]
    stable = [run.values[("tiny", STABLE_FT, "superb.score", s)] for s in SEEDS]
    assert superb.delta == pytest.approx(np.mean(ours) - np.mean(stable))
    assert superb.p_items is not None and superb.p_seeds == pytest.approx(sps.ttest_rel(ours, stable).pvalue)
    # the comparison with the pre-trained model is untouched
    base = [run.values[("tiny", "pre-trained", "superb.score", s)] for s in SEEDS]
    assert row.cells["superb.score"].vs_baseline.delta == pytest.approx(np.mean(ours) - np.mean(base))


def test_only_merges_strictly_between_0_and_1_with_an_alpha_1_sibling_are_compared(board, run):
    def compared(model: str, upstream: str = "tiny") -> bool:
        return any(c.vs_finetuned is not None for c in _row(board, model, upstream).cells.values())

    for model in ("pre-trained", STABLE_FT, "pr (Stable-FT)", "sid · lin alpha=0.25"):
        assert not compared(model)
    assert not compared("pre-trained", "fbank")
    # another merge entry has no α = 1 of its own: the unmerged fine-tuned model stands in
    cmp = _row(board, "pr · other alpha=0.5").cells["pr.per"].vs_finetuned
    ours = [run.values[("tiny", "pr · other alpha=0.5", "pr.per", s)] for s in SEEDS]
    unmerged = [run.values[("tiny", "pr (Stable-FT)", "pr.per", s)] for s in SEEDS]
    assert cmp.delta == pytest.approx(np.mean(ours) - np.mean(unmerged))


def test_pairs_need_the_same_upstream_fine_tuning_and_other_swept_parameters():
    def row(upstream, finetune, merge, alpha, params=None):
        return lbm.Row(upstream, f"{finetune} {merge} {alpha} {params}", finetune, merge, params, alpha, [0],
                       finetune == "none")

    rows = {k: r for k, r in enumerate([
        row("a", "none", "", 0.0),
        row("a", "pr", "ties", 0.5, {"alpha": 0.5, "density": 0.2}),  # 1
        row("a", "pr", "ties", 1.0, {"alpha": 1.0, "density": 0.5}),  # 2: another density
        row("a", "pr", "ties", 1.0, {"alpha": 1.0, "density": 0.2}),  # 3: its sibling
        row("a", "pr", "lin", 0.25, {"alpha": 0.25}),  # 4: no lin α = 1, no unmerged model
        row("b", "pr", "ties", 0.5, {"alpha": 0.5, "density": 0.2}),  # 5: another upstream
        row("a", "sid", "ties", 0.5, {"alpha": 0.5, "density": 0.2}),  # 6: another fine-tuning
        row("a", "pr", "ties", None),  # 7: no α
        row("a", "pr", "ties", 0.0, {"alpha": 0.0, "density": 0.2}),  # 8: α = 0 is not a merge to compare
    ])}
    assert finetuned_pairs(rows) == {1: 3}


def test_markdown_csv_json_and_html_carry_the_second_comparison(board):
    md = fmts.render_markdown(board)
    lines = md.splitlines()
    title = "## Against the fully fine-tuned model (α = 1)"
    assert lines.index("## Against the pre-trained model") < lines.index(title)
    section = lines[lines.index(title):]
    section = section[:next((k for k, line in enumerate(section[1:], 1) if line.startswith("## ")), len(section))]
    table = [line for line in section if line.startswith("| tiny |")]
    assert [line.split(" | ")[1] for line in table] == [SPEECH_FT, "pr · other alpha=0.5"]
    cmp = _row(board, SPEECH_FT).cells["pr.per"].vs_finetuned
    assert table[0].split(" | ")[2:4] == [fmts.fmt_delta(cmp), fmts.fmt_pvalues(cmp)]
    assert section[2] == fmts.method_text(board)["finetuned"]

    rows = list(csv.DictReader(io.StringIO(fmts.render_csv(board))))
    assert tuple(rows[0]) == fmts.CSV_FIELDS
    assert fmts.CSV_FIELDS[-7:] == ("ft_delta", "ft_delta_low", "ft_delta_high", "ft_p_items", "ft_p_items_test",
                                    "ft_p_seeds", "ft_significant")
    line = next(r for r in rows if r["model"] == SPEECH_FT and r["column"] == "pr.per")
    assert (float(line["ft_delta"]), float(line["ft_delta_low"]), float(line["ft_delta_high"])) == (
        cmp.delta, cmp.low, cmp.high)
    assert float(line["ft_p_items"]) == cmp.p_items and float(line["ft_p_seeds"]) == cmp.p_seeds
    assert line["ft_p_items_test"] == "permutation"
    assert line["ft_significant"] == str(cmp.significant)
    assert float(line["delta"]) == _row(board, SPEECH_FT).cells["pr.per"].vs_baseline.delta
    stable = next(r for r in rows if r["model"] == STABLE_FT and r["column"] == "pr.per")
    assert all(stable[f] == "" for f in fmts.CSV_FIELDS[-7:])

    data = json.loads(fmts.render_json(board))
    cell = next(r for r in data["rows"] if r["model"] == SPEECH_FT)["cells"]["pr.per"]
    assert cell["vs_finetuned"]["delta"] == cmp.delta and cell["vs_finetuned"]["p_items"] == cmp.p_items

    page = render_html(board)
    table = page[page.index('<table id="compare-finetuned"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 3  # header and two rows
    assert f"Δ vs α = 1 {cmp.delta:+.2f}" in table
    assert "Against the fully fine-tuned model (α = 1)" in page


def test_no_section_without_an_alpha_1_sibling(tmp_path):
    run = _run(tmp_path / "out", [m for m in MODELS if m[0]["alpha"] != 1.0])
    board = lbm.build(run.output, SETTINGS)
    assert all(c.vs_finetuned is None for r in board.rows for c in r.cells.values())
    assert "fully fine-tuned" not in fmts.render_markdown(board)
    assert "## Against the pre-trained model" in fmts.render_markdown(board)
    page = render_html(board)
    assert "compare-finetuned" not in page and "Speech-FT against Stable-FT" not in page
    assert all(line.endswith(",,,,,,") for line in fmts.render_csv(board).splitlines()[1:])
