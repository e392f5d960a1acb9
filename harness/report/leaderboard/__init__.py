"""The leaderboard: a view model built from a results store, and its text and HTML renderings.

:mod:`.model` (the view model), :mod:`.builder` (the store query and the statistics of every cell),
:mod:`.superb` (the SUPERB score of resampled metrics), :mod:`.text` (numbers and sentences every
rendering shares), :mod:`.formats` (markdown, CSV, JSON), :mod:`.html` (the page and its plots),
:mod:`.dispatch` (:func:`render`: one entry point for every format).
"""

from harness.report.leaderboard.builder import build
from harness.report.leaderboard.dispatch import FORMATS, render
from harness.report.leaderboard.model import (
    SUPERB,
    AbxSpread,
    Cell,
    Column,
    Comparison,
    Leaderboard,
    Row,
    Settings,
)

__all__ = [
    "FORMATS",
    "SUPERB",
    "AbxSpread",
    "Cell",
    "Column",
    "Comparison",
    "Leaderboard",
    "Row",
    "Settings",
    "build",
    "render",
]
