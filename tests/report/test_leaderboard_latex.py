"""`harness leaderboard --format latex`: a booktabs table whose rows, marks and escapes are right."""

from __future__ import annotations

import re

import pytest

from harness.cli import main
from harness.report import leaderboard as lbm
from harness.report.leaderboard.latex import escape, render_latex
from harness.report.leaderboard.text import best_value
from tests.leaderboard_helpers import standard_run

SETTINGS = lbm.Settings(n_resamples=200, n_permutations=200)


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> lbm.Leaderboard:
    run = standard_run(tmp_path_factory.mktemp("latex") / "out", seeds=[0], n_items=40, tasks=("pr", "sid"))
    run.close()
    return lbm.build(run.output, SETTINGS)


def _unescaped(text: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


def test_special_characters_are_escaped():
    assert escape("pr_1 · speech_ft α=0.25 & 5% #2 {x} ~ ^") == (
        r"pr\_1 $\cdot$ speech\_ft $\alpha$=0.25 \& 5\% \#2 \{x\} \textasciitilde{} \textasciicircum{}")
    assert escape("a\\b") == r"a\textbackslash{}b"


def test_the_table_has_a_row_per_model_with_every_column_marks_and_bold_bests(board):
    latex = render_latex(board)
    lines = latex.splitlines()
    assert lines[0].startswith("% harness leaderboard; needs \\usepackage{booktabs}")
    assert _unescaped(latex, "{") == _unescaped(latex, "}")
    start, end = lines.index(r"\midrule"), lines.index(r"\bottomrule")
    body = [line for line in lines[start + 1:end] if line != r"\midrule"]
    assert len(body) == len(board.rows)
    width = 2 + len(board.columns)  # several upstreams: upstream and model come first
    assert lines[start - 1].count(" & ") == width - 1
    for row, line in zip(board.rows, body, strict=True):
        cells = line.removesuffix(r" \\").split(" & ")
        assert len(cells) == width and cells[1] == escape(row.model)
        for col, text in zip(board.columns, cells[2:], strict=True):
            cell = row.cells[col.key]
            value = f"{cell.mean:.{cell.digits}f}".replace("-", "$-$")
            assert text.startswith((value + " ", value + "$", rf"\textbf{{{value}}}"))
            assert rf"{{\scriptsize[{cell.low:.{cell.digits}f}".replace("-", "$-$") in text
            assert (r"$^{*}$" in text) == bool(cell.vs_baseline and cell.vs_baseline.significant)
            assert (r"\textbf{" in text) == (best_value(board, col) == cell.mean)
    assert latex.count(r"\begin{table}") == 2
    first, second = latex.split(r"\end{table}")[:2]
    assert first.count(r"\midrule") == 2  # under the header, and between the two upstreams
    # the second table: each compared model's difference to its pre-trained model, interval and mark
    rows = [line.removesuffix(r" \\").split(" & ") for line in second.splitlines() if line.count(" & ") == width - 1]
    compared = [r for r in board.rows if any(c.vs_baseline for c in r.cells.values())]
    assert [cells[1] for cells in rows[1:]] == [escape(r.model) for r in compared]
    for row, cells in zip(compared, rows[1:], strict=True):
        for col, text in zip(board.columns, cells[2:], strict=True):
            cmp = row.cells[col.key].vs_baseline
            assert text.startswith(f"{cmp.delta:+.{cmp.digits}f}".replace("-", "$-$"))
            assert (r"$^{*}$" in text) == cmp.significant


def test_the_cli_writes_latex(board, tmp_path):
    out = tmp_path / "table.tex"
    assert main(["leaderboard", board.source, "--format", "latex", "--out", str(out), "--resamples", "200",
                 "--permutations", "200"]) == 0
    assert out.read_text().startswith("% harness leaderboard")
