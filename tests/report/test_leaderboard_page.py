"""The HTML page puts the headline first: the SUPERB column beside the model name at 1400 and 1000 px,
short metric headers with the full name on hover, bold only for a unique best, the SUPERB-against-α plot
first, layer-weight plots without one-hidden-state upstreams, per-task bars that name each model once."""

from __future__ import annotations

import copy
import html
import json
import re
from dataclasses import replace

import pytest

from harness.report import leaderboard as lbm
from harness.report import plots
from harness.report.leaderboard import render
from harness.report.leaderboard.figures import bar_panels, figures, weight_panels
from harness.report.leaderboard.model import SUPERB, Column
from harness.report.leaderboard.text import best_value, short_label
from tests.leaderboard_helpers import standard_run
from tests.report.test_leaderboard_browser import _chromium, _console, chromium  # noqa: F401  (fixture)

ABX_CONDITIONS = [f"{s}_speaker_{c}_context" for s in ("within", "across") for c in ("within", "any")]


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> lbm.Leaderboard:
    run = standard_run(tmp_path_factory.mktemp("page") / "out", seeds=[0, 1], n_items=40)
    run.close()
    return lbm.build(run.output, lbm.Settings(n_resamples=200, n_permutations=200))


@pytest.fixture(scope="module")
def demo_like(board) -> lbm.Leaderboard:
    """The board with what makes the demo's page wide: the four ABX conditions and long model names."""
    lb = copy.deepcopy(board)
    for k, cond in enumerate(ABX_CONDITIONS):
        col = Column(f"abx.{cond}", "abx", "abx", cond, "lower")
        lb.columns.append(col)
        for r in lb.rows:
            if "abx.error" in r.cells:
                cell = r.cells["abx.error"]
                low, high = (None if x is None else x + k for x in (cell.low, cell.high))
                r.cells[col.key] = replace(cell, mean=cell.mean + k, low=low, high=high)
    for r in lb.rows:
        r.model = r.model.replace("pr", "phone recognition fine-tuning of hubert_base_ls960")
    return lb


def test_short_headers_keep_the_full_name_on_hover(demo_like):
    col = next(c for c in demo_like.columns if c.key == "abx.across_speaker_any_context")
    assert col.label == "ABX across speaker any context"
    assert short_label(col) == "ABX across-spk any-ctx"
    page = render(demo_like, "html")
    th = re.search(r'<th data-key="abx.across_speaker_any_context"[^>]*>', page).group(0)
    assert 'title="ABX across speaker any context (abx.across_speaker_any_context; lower is better)"' in th


def test_the_superb_column_follows_the_model_name(board):
    page = render(board, "html")
    results = page[page.index('id="results"'):]
    keys = re.findall(r'<th data-key="([^"]+)"', results[:results.index("</thead>")])
    assert keys[:4] == ["upstream", "model", SUPERB, "seeds"]


def test_only_a_unique_best_is_bold(board):
    col = next(c for c in board.columns if c.key == "pr.per")
    assert best_value(board, col) == min(r.cells["pr.per"].mean for r in board.rows)
    tied = copy.deepcopy(board)
    for r in tied.rows:
        r.cells["pr.per"] = replace(r.cells["pr.per"], mean=12.5, low=None, high=None)
    assert best_value(tied, col) is None
    page = render(tied, "html")
    per_cells = re.findall(r'<td data-v="12.5"( class="best")?', page)
    assert per_cells and not any(per_cells)
    # a best shared by two of four rows is not bold either
    two = copy.deepcopy(board)
    best = min(r.cells["pr.per"].mean for r in two.rows)
    for r in two.rows[:2]:
        r.cells["pr.per"] = replace(r.cells["pr.per"], mean=best - 1, low=None, high=None)
    assert best_value(two, col) is None


def test_superb_against_alpha_is_the_first_plot(board):
    assert [p.name for p in figures(board)][0] == "superb_vs_alpha"


def test_layer_weight_plots_leave_out_one_hidden_state_upstreams(board):
    lb = copy.deepcopy(board)
    fbank = next(r for r in lb.rows if r.upstream == "fbank")
    fbank.layer_weights = {name: [1.0] for name in fbank.layer_weights}
    panels = weight_panels(lb)
    assert panels and all(lb.row_label(fbank) not in curves for curves in panels.values())
    assert all(len(curves) == len(lb.rows) - 1 for curves in panels.values())


def _extents(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer(), fig.bbox


def test_task_bars_name_each_model_once_cut_no_title_and_space_their_ticks(demo_like):
    panels = bar_panels(demo_like)
    fig = plots.task_bars(panels)
    renderer, box = _extents(fig)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(panels) > 3
    for k, ax in enumerate(axes):
        shown = [t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
        if k % 3 == 0:
            assert shown == list(dict.fromkeys(lb for p in panels for lb in p.labels))
        else:
            assert shown == [], f"panel {k} repeats the model names"
        title = ax.title.get_window_extent(renderer)
        assert box.x0 - 0.5 <= title.x0 and title.x1 <= box.x1 + 0.5, f"title cut: {ax.get_title()!r}"
        ticks = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()),
                       key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(ticks, ticks[1:], strict=False)), f"x ticks overlap: {ax.get_title()}"
    assert any(ax.get_title().startswith("ABX across-spk any-ctx") for ax in axes)


MEASURE = """<script>
window.addEventListener("load", function () {
  var th = document.querySelector('#results th[data-key="superb.score"]');
  var r = th.getBoundingClientRect(), wrap = th.closest(".wrap").getBoundingClientRect();
  var heads = th.parentNode.cells, last = heads[heads.length - 1].getBoundingClientRect();
  var cut = [];
  document.querySelectorAll("h1, h2, th, figcaption, .sub").forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1) { cut.push(el.textContent.slice(0, 60)); }
  });
  document.documentElement.setAttribute("data-measure", JSON.stringify(
    {left: r.left, right: r.right, wrap: wrap.right, width: window.innerWidth, last: last.right, cut: cut}));
});
</script></body>"""


@pytest.mark.parametrize("width", [1400, 1000])
def test_in_chromium_the_superb_column_is_in_view_and_nothing_is_cut(chromium, demo_like, tmp_path, width):  # noqa: F811
    path = tmp_path / "board.html"
    path.write_text(render(demo_like, "html").replace("</body>", MEASURE), encoding="utf-8")
    result = _chromium(chromium, tmp_path / "profile", f"--window-size={width},1000", "--dump-dom", path.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == []
    attr = re.search(r'data-measure="([^"]*)"', result.stdout)
    assert attr, "the measuring script did not run"
    m = json.loads(html.unescape(attr.group(1)))
    assert m["width"] == width
    assert 0 <= m["left"] and m["right"] <= min(m["wrap"], m["width"]), m
    assert m["cut"] == [], m["cut"]
    if width == 1000:  # the table is wider than the window: a SUPERB column at its end would be out of view
        assert m["last"] > m["width"], m


def test_markdown_is_unchanged_by_the_page_order(board):
    text = render(board, "md")
    header = next(line for line in text.splitlines() if line.startswith("| upstream"))
    assert header.index("PR PER") < header.index("SUPERB")  # the markdown keeps its own column order
