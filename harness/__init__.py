"""The Speech-FT benchmark harness: fine-tune, merge and evaluate self-supervised speech models.

``harness.run(recipe, output=..., overrides=...)``, ``harness.results(dir)`` (:mod:`harness.pipeline.python_api`),
``harness.leaderboard(dir)`` (:mod:`harness.report.leaderboard.board_json`) and ``harness.drift(dir)``
(:mod:`harness.report.drift`) are the Python entry points, imported on first use so that ``import harness`` stays
light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from harness.core.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__", "run", "results", "leaderboard", "drift"]

_LAZY = {"run": "harness.pipeline.python_api", "results": "harness.pipeline.python_api",
         "leaderboard": "harness.report.leaderboard.board_json", "drift": "harness.report.drift"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
