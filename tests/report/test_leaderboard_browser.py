"""The HTML leaderboard: one self-contained page; in headless Chromium it renders its tables and plots,
sorts, and logs nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import leaderboard as lbm
from harness.report.leaderboard import render
from tests.leaderboard_helpers import standard_run

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=300, check=False,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.TimeoutExpired):
            pass
        path = _find_chromium()
    if path is None:
        pytest.skip("Debian's chromium is not installed and `apt-get install -y chromium` was not possible "
                    "(needs root and a package mirror): the page cannot be checked in a browser here.")
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, lbm.Leaderboard]:
    root = tmp_path_factory.mktemp("browser")
    run = standard_run(root / "out", seeds=[0, 1], n_items=50)
    run.close()
    board = lbm.build(run.output, lbm.Settings(n_resamples=300, n_permutations=500))
    path = root / "board.html"
    path.write_text(render(board, "html"), encoding="utf-8")
    return path, board


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.tables: dict[str, int] = {}
        self.images: list[str] = []
        self.current: str | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.current = a.get("id")
            self.tables[self.current] = 0
        if tag == "tr" and self.current and "tbody" in self.stack:
            self.tables[self.current] += 1
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("script", "link", "img") and any(str(a.get(k, "")).startswith("http") for k in ("src", "href")):
            self.external.append(tag)
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()


def test_html_is_one_self_contained_page_with_tables_and_plots(page):
    path, _ = page
    text = path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(text)
    assert parser.stack == []
    assert parser.tables == {"results": 4, "compare": 2, "compare-finetuned": 1, "abx": 4}
    assert len(parser.images) == 3 and all(s.startswith("data:image/svg+xml;base64,") for s in parser.images)
    assert parser.external == []
    assert "SUPERB score against α" in text and "Learned layer weights" in text
    assert 'data-key="pr.per"' in text


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=90, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_page_renders_sorts_and_loads_every_plot_without_console_messages(chromium, page, tmp_path):
    path, board = page
    url = path.as_uri() + "#results:pr.per:descending"
    result = _chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == []
    dom = result.stdout
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="1"' in root, "the page script did not run to its end"
    assert 'data-plots="3/3"' in root, f"not every plot decoded: {root}"
    results = dom[dom.index('id="results"'):]
    results = results[:results.index("</table>")]
    shown = [s.strip() for s in re.findall(r"<td class=\"text model\">([^<]+)<", results)]
    expected = sorted(board.rows, key=lambda r: r.cells["pr.per"].mean, reverse=True)
    assert shown == [r.model for r in expected]
    assert 'aria-sort="descending"' in results


def test_screenshot_shows_a_rendered_page(chromium, page, tmp_path):
    from matplotlib.image import imread

    path, _ = page
    shot = tmp_path / "board.png"
    result = _chromium(chromium, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}",
                       path.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert _console(result.stderr) == []
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1400)
    # something is drawn (text, table rules, plots): a good share of the page is not background
    background = (pixels.mean(axis=2) > 0.95).mean()
    assert background < 0.97 and pixels.std() > 0.05
