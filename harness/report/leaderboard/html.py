"""The leaderboard as one self-contained HTML page: sortable tables, embedded SVG plots, no network.

Tables sort on a click on their header (ascending, descending, original order); the sort is kept
in the address as ``#<table>:<column>:<ascending|descending>`` so a sorted view can be shared.
Plots are matplotlib SVGs embedded as data URIs.
"""

from __future__ import annotations

import base64
import html
import math
from string import Template

from harness.evaluation.scoring import coverage_text
from harness.report import plots
from harness.report.curves import curves_html
from harness.report.drift_tables import TITLE as DRIFT_TITLE
from harness.report.drift_tables import drift_html
from harness.report.leaderboard.figures import drift_plot, figures
from harness.report.leaderboard.model import SUPERB, Cell, Column, Comparison, Leaderboard, Row
from harness.report.leaderboard.text import (
    NO_PAPER_MATCH,
    PAPER_TITLE,
    SWEEP_TITLE,
    best_value,
    fmt,
    fmt_p,
    method_text,
    paper_grid,
    seeds_text,
    short_label,
    sweep_table,
)


def _columns(lb: Leaderboard) -> list[Column]:
    """The columns in page order: the SUPERB score, the headline, first."""
    return sorted(lb.columns, key=lambda c: c.key != SUPERB)


# ---------------------------------------------------------------------------------------------- page


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num_attr(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _cmp_text(cmp: Comparison, against: str = "pre-trained") -> str:
    text = f"Δ vs {against} {fmt(cmp.delta, cmp.digits, sign=True)}"
    if cmp.low is not None and cmp.high is not None:
        text += f" [{fmt(cmp.low, cmp.digits, sign=True)}, {fmt(cmp.high, cmp.digits, sign=True)}]"
    if cmp.p_items is not None:
        text += f", p (items, {cmp.items_test}) = {fmt_p(cmp.p_items)}"
    if cmp.p_seeds is not None:
        text += f", p (seeds) = {fmt_p(cmp.p_seeds)}"
    return text


def _value_td(cell: Cell | None, best: float | None) -> str:
    if cell is None:
        return '<td data-v="">–</td>'
    tip = [f"seed {s}: {fmt(v, cell.digits)}" for s, v in cell.per_seed.items()]
    if cell.interval:
        tip.append(f"interval over {cell.interval}")
    if cell.n_items:
        tip.append(f"{cell.n_items} items")
    cmp = cell.vs_baseline
    mark = ""
    if cmp is not None:
        tip.append(_cmp_text(cmp))
        if cmp.significant:
            mark = f'<span class="mark {"better" if cmp.better else "worse"}">*</span>'
    classes = ' class="best"' if best is not None and math.isclose(cell.mean, best, abs_tol=1e-12) else ""
    ci = ""
    if cell.low is not None and cell.high is not None:
        ci = f'<span class="ci">{fmt(cell.low, cell.digits)} – {fmt(cell.high, cell.digits)}</span>'
    return (f'<td data-v="{_num_attr(cell.mean)}"{classes} title="{_e(chr(10).join(tip))}">'
            f'<span class="v">{fmt(cell.mean, cell.digits)}</span>{mark}{ci}{_e(coverage_text(cell.covers))}</td>')


def _delta_td(cmp: Comparison | None, against: str = "pre-trained") -> str:
    if cmp is None:
        return '<td data-v="">–</td>'
    cls = ("better" if cmp.better else "worse") + (" sig" if cmp.significant else "")
    ci = ""
    if cmp.low is not None and cmp.high is not None:
        ci = f"[{fmt(cmp.low, cmp.digits, sign=True)}, {fmt(cmp.high, cmp.digits, sign=True)}]"
    ps = []
    if cmp.p_items is not None:
        ps.append(f"p {fmt_p(cmp.p_items)}" + (" (bootstrap)" if cmp.items_test == "bootstrap" else ""))
    if cmp.p_seeds is not None:
        ps.append(f"seeds p {fmt_p(cmp.p_seeds)}")
    mark = "*" if cmp.significant else ""
    lines = "".join(f'<span class="ci">{_e(x)}</span>' for x in (ci, *ps) if x)
    return (f'<td data-v="{_num_attr(cmp.delta)}" title="{_e(_cmp_text(cmp, against))}">'
            f'<span class="v {cls}">{fmt(cmp.delta, cmp.digits, sign=True)}{mark}</span>{lines}</td>')


def _th(key: str, label: str, text: bool = False, tip: str = "") -> str:
    cls = ' class="text"' if text else ""
    title = f' title="{_e(tip)}"' if tip else ""
    return f'<th data-key="{_e(key)}"{cls}{title} aria-sort="none">{_e(label)}</th>'


def _metric_th(col: Column, suffix: str = "") -> str:
    """A metric's header: its short name, the full one and its direction on hover."""
    label = f"{short_label(col)}{suffix}\u00a0{col.arrow}"
    return _th(col.key, label, tip=f"{col.label}{suffix} ({col.key}; {col.direction} is better)")


def _row_attrs(lb: Leaderboard, row: Row, index: int) -> str:
    classes = []
    if row.baseline:
        classes.append("baseline")
    if index > 0 and lb.rows[index - 1].upstream != row.upstream:
        classes.append("group")
    return f' class="{" ".join(classes)}"' if classes else ""


def _label_tds(row: Row) -> str:
    tag = ' <span class="tag">baseline</span>' if row.baseline else ""
    return (f'<td class="text">{_e(row.upstream)}</td>'
            f'<td class="text model">{_e(row.model)}{tag}</td>')


def results_table(lb: Leaderboard) -> str:
    columns = _columns(lb)
    lead = [c for c in columns if c.key == SUPERB]  # next to the model name: the headline needs no scrolling
    rest = [c for c in columns if c.key != SUPERB]
    head = _th("upstream", "Upstream", True) + _th("model", "Model", True)
    head += "".join(_metric_th(c) for c in lead) + _th("seeds", "Seeds") + "".join(_metric_th(c) for c in rest)
    best = {c.key: best_value(lb, c) for c in columns}
    body = []
    for k, r in enumerate(lb.rows):
        tds = _label_tds(r) + "".join(_value_td(r.cells.get(c.key), best[c.key]) for c in lead)
        tds += f'<td data-v="{len(r.seeds)}">{len(r.seeds)}</td>'
        tds += "".join(_value_td(r.cells.get(c.key), best[c.key]) for c in rest)
        body.append(f"<tr{_row_attrs(lb, r, k)}>{tds}</tr>")
    return _table("results", head, body)


def compare_table(lb: Leaderboard, field: str = "vs_baseline") -> str | None:
    """The Δ table of every row with a ``field`` comparison: ``vs_baseline`` (against the pre-trained model)
    or ``vs_finetuned`` (against the fully fine-tuned one); None when no row has one."""
    rows = [r for r in lb.rows if any(getattr(c, field) for c in r.cells.values())]
    if not rows:
        return None
    head = _th("upstream", "Upstream", True) + _th("model", "Model", True)
    columns = _columns(lb)
    head += "".join(_metric_th(c, "\u00a0Δ") for c in columns)
    against, table_id = ("pre-trained", "compare") if field == "vs_baseline" else ("α = 1", "compare-finetuned")
    body = []
    for r in rows:
        tds = _label_tds(r) + "".join(
            _delta_td(getattr(r.cells[c.key], field) if c.key in r.cells else None, against) for c in columns)
        body.append(f"<tr>{tds}</tr>")
    return _table(table_id, head, body)


def sweep_choice_table(lb: Leaderboard) -> str:
    """The sweeps with their dev and test SUPERB scores (:func:`sweep_table`)."""
    header, rows = sweep_table(lb)
    text = 4  # upstream, sweep, setting, model
    head = "".join(_th(f"sweep{k}", name, k < text) for k, name in enumerate(header))
    body = ["<tr>" + "".join(f'<td class="text">{_e(v)}</td>' if k < text else f'<td data-v="{_e(v)}">{_e(v)}</td>'
                             for k, v in enumerate(row)) + "</tr>" for row in rows]
    return _table("sweeps", head, body)


def paper_comparison_table(lb: Leaderboard) -> str:
    """Each model beside the paper's row it reproduces: this run's value, under it the paper's and the difference
    (✓: the paper's value inside this run's interval)."""
    columns, grid = paper_grid(lb)
    head = (_th("upstream", "Upstream", True) + _th("model", "Model", True) + _th("paper", "Paper's row", True)
            + "".join(_th(c.key, f"{short_label(c)} {c.arrow}", tip=c.label) for c in columns))
    body = []
    for match, values in grid:
        tds = []
        for c, v in zip(columns, values, strict=True):
            if v is None:
                tds.append('<td data-v="">–</td>')
                continue
            mark = " ✓" if v.inside else ""
            tds.append(f'<td data-v="{_num_attr(v.ours)}" title="{_e(match.row)}"><span class="v">'
                       f'{fmt(v.ours, c.digits)}</span><span class="ci">paper {fmt(v.paper, c.digits)} · '
                       f'Δ {fmt(v.delta, c.digits, sign=True)}{mark}</span></td>')
        body.append(f'<tr><td class="text">{_e(match.upstream)}</td><td class="text model">{_e(match.model)}</td>'
                    f'<td class="text">{_e(match.row)}</td>{"".join(tds)}</tr>')
    return _table("paper", head, body)


def abx_table(lb: Leaderboard) -> str | None:
    pairs = [(r, c) for r in lb.rows for c in lb.columns if c.key in r.abx]
    if not pairs:
        return None
    head = (_th("upstream", "Upstream", True) + _th("model", "Model", True) + _th("metric", "Metric", True)
            + _th("pairs", "Pairs") + _th("value", "Value") + _th("dsd", "δ sd", tip="std over pairs of δ(p)")
            + _th("psd", "Δ sd vs pre-trained", tip="std over pairs of δ_model(p) − δ_pre-trained(p)")
            + _th("p", "p (pairs)"))
    body = []
    for r, c in pairs:
        spread, cell = r.abx[c.key], r.cells[c.key]
        p = cell.vs_baseline.p_items if cell.vs_baseline else None
        body.append(
            f'<tr>{_label_tds(r)}<td class="text" title="{_e(c.label)}">{_e(short_label(c))} {c.arrow}</td>'
            f'<td data-v="{spread.n_pairs}">{spread.n_pairs}</td>'
            f'<td data-v="{_num_attr(cell.mean)}">{fmt(cell.mean)}</td>'
            f'<td data-v="{_num_attr(spread.delta_value_std)}">{fmt(spread.delta_value_std)}</td>'
            f'<td data-v="{_num_attr(spread.paired_delta_value_std)}">{fmt(spread.paired_delta_value_std)}</td>'
            f'<td data-v="{_num_attr(p)}">{fmt_p(p)}</td></tr>')
    return _table("abx", head, body)


def _table(table_id: str, head: str, body: list[str]) -> str:
    return (f'<div class="wrap"><table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _section(title: str, content: str, section_id: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{content}</section>'


def drift_section(report: dict) -> str:
    """`harness drift`'s tables and its figure."""
    plot = drift_plot(report)
    data = base64.b64encode(plots.svg(plot.figure).encode()).decode("ascii")
    return (drift_html(report) + f'<figure><img class="plot" alt="{_e(plot.title)}" '
            f'src="data:image/svg+xml;base64,{data}"><figcaption>{_e(plot.caption)}</figcaption></figure>')


def render_html(lb: Leaderboard) -> str:
    text = method_text(lb)
    sections = [_section("Results", results_table(lb) + f'<p class="legend">{_e(text["values"])} '
                         "Bold: the one best value of a column (none on a tie). Hover a header for the metric's "
                         "full name, a value for its seeds and test.</p>", "results-section")]
    compare = compare_table(lb)
    if compare:
        sections.append(_section("Against the pre-trained model",
                                 compare + f'<p class="legend">{_e(text["compare"])}</p>', "compare-section"))
    finetuned = compare_table(lb, "vs_finetuned")
    if finetuned:
        sections.append(_section("Against the fully fine-tuned model (α = 1)",
                                 finetuned + f'<p class="legend">{_e(text["finetuned"])}</p>',
                                 "compare-finetuned-section"))
    if lb.sweep_choices:
        sections.append(_section(SWEEP_TITLE, sweep_choice_table(lb) + f'<p class="legend">{_e(text["sweeps"])}</p>',
                                 "sweep-section"))
    if lb.paper is not None:
        table = paper_comparison_table(lb) if lb.paper else f"<p>{_e(NO_PAPER_MATCH)}</p>"
        sections.append(_section(PAPER_TITLE, table + f'<p class="legend">{_e(text["paper"])}</p>', "paper-section"))
    abx = abx_table(lb)
    if abx:
        sections.append(_section("ABX: delta-value standard deviation",
                                 abx + f'<p class="legend">{_e(text["abx"])}</p>', "abx-section"))
    figs = []
    for plot in figures(lb):
        data = base64.b64encode(plots.svg(plot.figure).encode()).decode("ascii")
        figs.append(f'<figure><img class="plot" alt="{_e(plot.title)}" src="data:image/svg+xml;base64,{data}">'
                    f"<figcaption><b>{_e(plot.title)}.</b> {_e(plot.caption)}</figcaption></figure>")
    if figs:
        sections.append(_section("Plots", "".join(figs), "plots-section"))
    if lb.drift is not None:
        sections.append(_section(DRIFT_TITLE, drift_section(lb.drift), "drift-section"))
    training = curves_html(lb.folders or [lb.source])
    if training:
        sections.append(_section("Training curves", training, "curves-section"))
    if lb.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in lb.notes)
        sections.append(_section("Notes", f"<ul>{items}</ul>", "notes-section"))
    explained = ["values", "superb", "compare", *(["finetuned"] if finetuned else []),
                 *(["sweeps"] if lb.sweep_choices else []), *(["paper"] if lb.paper is not None else []), "abx"]
    method = "".join(f"<p>{_e(text[k])}</p>" for k in explained)
    sections.append(f'<details class="method"><summary>How these numbers are computed</summary>{method}</details>')
    ref = f" · SUPERB reference <b>{_e(lb.reference)}</b>" if lb.reference else ""
    subtitle = f"<code>{_e(lb.source)}</code> · {len(lb.rows)} models · {_e(seeds_text(lb))}{ref}"
    return PAGE.substitute(title=_e(f"Leaderboard · {lb.source}"), subtitle=subtitle, body="\n".join(sections),
                           script=SCRIPT)


SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    if (!cell) { return null; }
    var v = cell.getAttribute("data-v");
    if (v === "") { return null; }
    if (v !== null) { var x = parseFloat(v); if (!isNaN(x)) { return x; } }
    return cell.textContent.trim().toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    a = String(a); b = String(b);
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function sortTable(table, col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      if (dir === "none") { return r1.getAttribute("data-order") - r2.getAttribute("data-order"); }
      var a = key(r1.cells[col]), b = key(r2.cells[col]);
      if (a === null || b === null) { return (a === null ? 1 : 0) - (b === null ? 1 : 0); }
      var c = compare(a, b);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.classList.toggle("sorted", dir !== "none");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === col ? dir : "none");
    });
  }
  function remember(table, th, dir) {
    try {
      var url = location.pathname + location.search;
      if (dir !== "none") { url += "#" + table.id + ":" + encodeURIComponent(th.getAttribute("data-key")) + ":" + dir; }
      history.replaceState(null, "", url);
    } catch (e) { /* some browsers refuse to rewrite file: addresses; sorting still works */ }
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r, i) { r.setAttribute("data-order", i); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      function go() {
        var cur = th.getAttribute("aria-sort");
        var next = cur === "ascending" ? "descending" : (cur === "descending" ? "none" : "ascending");
        sortTable(table, col, next);
        remember(table, th, next);
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); }
      });
    });
  });
  var m = /^#([\\w-]+):([^:]+):(ascending|descending)$/.exec(location.hash);
  if (m) {
    var table = document.getElementById(m[1]);
    if (table && table.tHead) {
      var wanted = decodeURIComponent(m[2]);
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        if (th.getAttribute("data-key") === wanted) { sortTable(table, col, m[3]); }
      });
    }
  }
  document.documentElement.setAttribute("data-ready", "1");
  window.addEventListener("load", function () {
    var imgs = document.querySelectorAll("img.plot"), ok = 0;
    Array.prototype.forEach.call(imgs, function (img) { if (img.complete && img.naturalWidth > 0) { ok += 1; } });
    document.documentElement.setAttribute("data-plots", ok + "/" + imgs.length);
  });
})();
"""

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #eaeef2; --head: #f6f8fa;
        --accent: #0969da; --good: #1a7f37; --bad: #cf222e; --base: #fbf8ec; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: var(--fg);
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 28px 28px 56px; }
h1 { font-size: 24px; margin: 0 0 2px; letter-spacing: -0.01em; }
.sub { color: var(--muted); margin: 0 0 20px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
       padding: 1px 5px; border-radius: 4px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px 12px;
          margin: 0 0 18px; box-shadow: 0 1px 2px rgba(31, 35, 40, 0.04); }
h2 { font-size: 16px; margin: 0 0 10px; }
.wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 100%; }
th, td { padding: 6px 10px; text-align: right; white-space: nowrap; border-bottom: 1px solid var(--soft);
         vertical-align: top; }
th { background: var(--head); font-weight: 600; font-size: 13px; position: sticky; top: 0; cursor: pointer;
     user-select: none; border-bottom: 1px solid var(--line); white-space: normal; min-width: 4.5em;
     vertical-align: bottom; }
th:hover { background: #eef1f4; }
th:focus-visible { outline: 2px solid var(--accent); outline-offset: -2px; }
th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--accent); font-size: 10px; }
th[aria-sort=descending]::after { content: " \\25BC"; color: var(--accent); font-size: 10px; }
th.text, td.text { text-align: left; }
td.model { font-weight: 500; }
tbody tr:hover td { background: #f3f8ff; }
tr.baseline td { background: var(--base); }
table:not(.sorted) tr.group td { border-top: 2px solid var(--line); }
td .v { font-weight: 500; }
td.best .v { font-weight: 700; }
.ci { display: block; color: var(--muted); font-size: 11.5px; }
.mark { font-weight: 700; margin-left: 2px; }
.better.sig, .mark.better { color: var(--good); }
.worse.sig, .mark.worse { color: var(--bad); }
.tag { font-size: 10.5px; color: #7d6608; background: #f5ecc4; border-radius: 8px; padding: 0 6px;
       margin-left: 6px; vertical-align: 1px; font-weight: 500; }
.legend { color: var(--muted); font-size: 12.5px; margin: 10px 2px 4px; max-width: 980px; }
caption { text-align: left; font-weight: 600; font-size: 13px; padding: 10px 0 6px; }
figure { margin: 8px 0 22px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; max-width: 980px; }
ul { margin: 4px 0 8px; padding-left: 20px; }
details.method { color: var(--muted); font-size: 13px; padding: 0 4px; }
details.method summary { cursor: pointer; color: var(--fg); }
</style>
</head>
<body>
<main>
<h1>Leaderboard</h1>
<p class="sub">$subtitle</p>
$body
</main>
<script>$script</script>
</body>
</html>
""")
