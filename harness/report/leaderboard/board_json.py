"""The leaderboard as one JSON document with where each model's numbers came from: `harness leaderboard
--format json` and ``harness.leaderboard()``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.result_rows import distinct_outputs
from harness.report.leaderboard.builder import build
from harness.report.leaderboard.dispatch import render
from harness.report.leaderboard.model import Leaderboard, Settings
from harness.report.provenance import attach
from harness.report.stats import ADJUSTMENTS


def with_provenance(board: Leaderboard, outputs: Sequence[Path]) -> dict[str, Any]:
    """``board``'s JSON form with each row's provenance records and the recipes' texts of every folder."""
    data = json.loads(render(board, "json"))
    for output in outputs:
        attach(data, output)
    return data


def leaderboard(output: str | Path | Sequence[str | Path], *, resamples: int = Settings.n_resamples,
                permutations: int = Settings.n_permutations, seed: int = 0, adjust: str = "none",
                drift: bool = False, device: str = "auto", paper: bool = False) -> dict[str, Any]:
    """``harness leaderboard DIR --format json`` from Python: the leaderboard of an output folder (or of several,
    as one table) as a dict: each row's cells (mean, interval, comparisons), the settings chosen on the dev sets,
    each model's provenance, with ``drift`` `harness drift`'s report (its models run on ``device``) and with ``paper``
    the paper's numbers beside the models that reproduce them.
    ``resamples``, ``permutations``, ``seed`` and ``adjust`` (none, holm or bh) as on the command line."""
    if resamples < 100 or permutations < 100:
        raise HarnessError(f"resamples={resamples}, permutations={permutations}: each must be at least 100; the "
                           "defaults suit most uses.")
    if adjust not in ADJUSTMENTS:
        raise HarnessError(f"adjust={adjust!r} is no p-value adjustment; give one of {', '.join(ADJUSTMENTS)}.")
    outputs = distinct_outputs(output)
    board = build(outputs, Settings(n_resamples=resamples, n_permutations=permutations, seed=seed, adjust=adjust))
    if paper:
        from harness.report.leaderboard.paper import paper_matches

        board.paper = paper_matches(board)
    if drift:
        from harness.report.drift import drift as drift_report

        board.drift = drift_report(outputs, device=device)
    return with_provenance(board, outputs)
