"""The leaderboard: a view model built from a results store, and its text and HTML renderings.

:mod:`.model` (the view model), :mod:`.builder` (the store query and the statistics of every cell),
:mod:`.superb` (the SUPERB score of resampled metrics), :mod:`.dev_choice` (the dev SUPERB score and the
settings it chooses), :mod:`.text` (numbers and sentences every rendering shares), :mod:`.formats`
(markdown, CSV, JSON), :mod:`.latex`, :mod:`.figures` (the plots), :mod:`.html` (the page),
:mod:`.dispatch` (:func:`render`: one entry point for every format), :mod:`.board_json` (the JSON with
provenance, ``harness.leaderboard()``).
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
