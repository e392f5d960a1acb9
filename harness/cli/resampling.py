"""The resampling options `leaderboard` and `compare` share, and the settings they make."""

from __future__ import annotations

import argparse

from harness.core.errors import HarnessError
from harness.report.leaderboard.model import Settings
from harness.report.stats import ADJUSTMENTS


def add_resampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resamples", type=int, default=Settings.n_resamples,
                        help=f"bootstrap resamples (default {Settings.n_resamples})")
    parser.add_argument("--permutations", type=int, default=Settings.n_permutations,
                        help=f"permutation-test resamples (default {Settings.n_permutations})")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default 0)")
    parser.add_argument("--adjust", choices=ADJUSTMENTS, default="none",
                        help="adjust p-values for testing many comparisons: holm (family-wise error), bh "
                             "(Benjamini–Hochberg false discovery rate) or none (default)")


def resampling_settings(args: argparse.Namespace) -> Settings:
    if args.resamples < 100 or args.permutations < 100:
        raise HarnessError("--resamples and --permutations must be at least 100; the defaults suit most uses.")
    return Settings(n_resamples=args.resamples, n_permutations=args.permutations, seed=args.seed, adjust=args.adjust)
