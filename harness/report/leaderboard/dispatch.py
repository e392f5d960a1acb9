"""One entry point for every leaderboard format: markdown, CSV, JSON and LaTeX text, or the HTML page."""

from __future__ import annotations

from harness.core.errors import HarnessError
from harness.report.leaderboard.formats import render_csv, render_json, render_markdown
from harness.report.leaderboard.latex import render_latex
from harness.report.leaderboard.model import Leaderboard

FORMATS = ("md", "csv", "html", "json", "latex")


def render(lb: Leaderboard, fmt_name: str) -> str:
    """``lb`` in one of :data:`FORMATS`."""
    if fmt_name == "md":
        return render_markdown(lb)
    if fmt_name == "csv":
        return render_csv(lb)
    if fmt_name == "json":
        return render_json(lb)
    if fmt_name == "latex":
        return render_latex(lb)
    if fmt_name == "html":
        # the page's plots need matplotlib, which the text formats do without
        from harness.report.leaderboard.html import render_html

        return render_html(lb)
    raise HarnessError(f"unknown leaderboard format {fmt_name!r}; choose one of {', '.join(FORMATS)}.")
