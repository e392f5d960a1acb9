"""The leaderboard as LaTeX tables for a paper: booktabs rules, the mean over seeds with its interval
in small type, the column's best in bold, ``*`` where the difference to the pre-trained model is
significant, and a caption saying how the intervals and tests were made; then the differences to the
pre-trained model with their paired intervals, the settings chosen on the dev sets and, where asked for, the
paper's numbers beside the run's."""

from __future__ import annotations

from collections.abc import Callable

from harness.report.leaderboard.model import SUPERB, Cell, Column, Comparison, Leaderboard, Row
from harness.report.leaderboard.text import (
    best_value,
    fmt,
    method_text,
    paper_grid,
    seeds_text,
    short_label,
    sweep_rows,
    sweep_table,
)

#: characters LaTeX reads as commands, and the symbols the labels use, in text mode
_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "·": r"$\cdot$", "α": r"$\alpha$",
            "β": r"$\beta$", "Δ": r"$\Delta$", "δ": r"$\delta$", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
            "−": "--", "–": "--", "≤": r"$\leq$", "<": r"$<$", ">": r"$>$", "†": r"\dag{}", "×": r"$\times$",
            "θ": r"$\theta$", "ε": r"$\varepsilon$"}


def escape(text: str) -> str:
    """``text`` typeset as it reads (every special character escaped)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def _num(value: float | None, digits: int, sign: bool = False) -> str:
    """A number with a typeset minus sign."""
    return fmt(value, digits, sign).replace("-", "$-$").replace("–", "--")


def _cell(cell: Cell | None, best: float | None) -> str:
    if cell is None:
        return "--"
    value = _num(cell.mean, cell.digits)
    if best is not None and abs(cell.mean - best) <= 1e-12:
        value = rf"\textbf{{{value}}}"
    if cell.vs_baseline is not None and cell.vs_baseline.significant:
        value += r"$^{*}$"
    if cell.low is not None and cell.high is not None:
        value += rf" {{\scriptsize[{_num(cell.low, cell.digits)}, {_num(cell.high, cell.digits)}]}}"
    return value


def _header(col: Column) -> str:
    return escape(f"{short_label(col)} {col.arrow}")


def _delta(cmp: Comparison | None) -> str:
    if cmp is None:
        return "--"
    value = _num(cmp.delta, cmp.digits, sign=True) + (r"$^{*}$" if cmp.significant else "")
    if cmp.low is not None and cmp.high is not None:
        value += rf" {{\scriptsize[{_num(cmp.low, cmp.digits, sign=True)}, {_num(cmp.high, cmp.digits, sign=True)}]}}"
    return value


def _table(lb: Leaderboard, rows: list[Row], caption: str, label: str, cell: Callable[[Row, Column], str]) -> list[str]:
    """One booktabs ``table`` of ``rows`` × the leaderboard's columns, upstreams apart by a rule."""
    several = len({r.upstream for r in lb.rows}) > 1
    lead = ["Upstream", "Model"] if several else ["Model"]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{" + "l" * len(lead) + "r" * len(lb.columns) + "}",
        r"\toprule",
        " & ".join(lead + [_header(c) for c in lb.columns]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in rows:
        if several and previous is not None and row.upstream != previous:
            lines.append(r"\midrule")
        previous = row.upstream
        names = [escape(row.upstream), escape(row.model)] if several else [escape(row.model)]
        lines.append(" & ".join(names + [cell(row, c) for c in lb.columns]) + r" \\")
    return [*lines, r"\bottomrule", r"\end{tabular}}", r"\end{table}"]


def render_latex(lb: Leaderboard) -> str:
    """``table`` environments (they need ``\\usepackage{booktabs}`` and ``graphicx``): every model and
    column, then each model's difference to its pre-trained model where there is one."""
    text = method_text(lb)
    superb = f" {text['superb']}" if any(c.key == SUPERB for c in lb.columns) else ""
    caption = f"{text['values']}{superb} Source: {lb.source}; {len(lb.rows)} models, {seeds_text(lb)}."
    best = {c.key: best_value(lb, c) for c in lb.columns}
    lines = [
        "% harness leaderboard; needs \\usepackage{booktabs} and \\usepackage{graphicx}",
        *(f"% note: {note}" for note in lb.notes),
        *_table(lb, lb.rows, caption, "tab:leaderboard", lambda r, c: _cell(r.cells.get(c.key), best[c.key])),
    ]
    compared = [r for r in lb.rows if any(c.vs_baseline for c in r.cells.values())]
    if compared:
        lines += ["", *_table(lb, compared, text["compare"], "tab:vs-pretrained",
                              lambda r, c: _delta(r.cells[c.key].vs_baseline if c.key in r.cells else None))]
    if lb.sweep_choices:
        lines += ["", *_sweeps(lb, text["sweeps"].replace("✓:", "Bold:"))]
    if lb.paper:
        lines += ["", *_paper(lb, text["paper"].replace("✓", "†"))]
    return "\n".join(lines) + "\n"


def _paper(lb: Leaderboard, caption: str) -> list[str]:
    """Each model beside the paper's row it corresponds to: this run's value, the paper's and the difference in
    small type, † where the paper's value lies inside this run's interval."""
    columns, grid = paper_grid(lb)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(caption)}}}", r"\label{tab:paper}",
             r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{lll" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(["Upstream", "Model", "Paper"] + [_header(c) for c in columns]) + r" \\", r"\midrule"]
    for match, values in grid:
        cells = ["--" if v is None else _num(v.ours, c.digits) + (r"\dag{}" if v.inside else "")
                 + rf" {{\scriptsize({_num(v.paper, c.digits)}, {_num(v.delta, c.digits, sign=True)})}}"
                 for c, v in zip(columns, values, strict=True)]
        lines.append(" & ".join([escape(match.upstream), escape(match.model), escape(match.row), *cells]) + r" \\")
    return [*lines, r"\bottomrule", r"\end{tabular}}", r"\end{table}"]


def _sweeps(lb: Leaderboard, caption: str) -> list[str]:
    """The settings chosen on the dev sets (:func:`sweep_rows`), the chosen one of each sweep in bold."""
    header = sweep_table(lb)[0][:-1]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(caption)}}}", r"\label{tab:dev-choice}",
             r"\begin{tabular}{llllrr}", r"\toprule", " & ".join(escape(h) for h in header) + r" \\", r"\midrule"]
    for *names, dev, test, chosen in sweep_rows(lb):
        typeset = [escape(n) for n in names] + [_num(dev, 2), _num(test, 2)]
        if chosen:
            typeset = [rf"\textbf{{{c}}}" for c in typeset]
        lines.append(" & ".join(typeset) + r" \\")
    return [*lines, r"\bottomrule", r"\end{tabular}", r"\end{table}"]
