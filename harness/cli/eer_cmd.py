"""`harness eer`: the equal error rate and minimum detection cost of any verification system's scores.

    harness eer --trials veri_test2.txt --scores scores.txt [--p-target 0.01] [--speaker-of path|none] [--json]

Scored as the ``asv`` downstream scores (:mod:`harness.evaluation.verification`): the EER on the linearly
interpolated ROC curve, and NIST's normalized minimum detection cost at ``--p-target``. The interval
is a percentile bootstrap that draws enrolment speakers with all their trials (the subset bootstrap,
:mod:`harness.report.item_stats`); ``--speaker-of path`` takes an enrolment's speaker from the first
part of its id (VoxCeleb's ``id10270/5r0dWxy17C8/00001.wav``). With fewer than 10 speakers it draws
trials one by one and warns that this understates the spread; ``--speaker-of none`` draws trials
without the warning.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError
from harness.evaluation.verification import equal_error_rate, min_dcf, read_scores, read_trials

log = logging.getLogger("harness.cli.eer")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eer", help="equal error rate and minDCF of a system's verification scores")
    parser.add_argument("--trials", required=True, type=Path,
                        help="the trial list: '<0|1> <enrol> <test>' or '<enrol> <test> <target|nontarget>' lines")
    parser.add_argument("--scores", required=True, type=Path, help="the system's '<enrol> <test> <score>' lines")
    parser.add_argument("--p-target", type=float, default=0.01,
                        help="prior of a target trial in the detection cost (default 0.01; VoxSRC: 0.05)")
    parser.add_argument("--speaker-of", choices=("path", "none"), default="path",
                        help="how the interval groups trials: by the enrolment id's first path part (default) "
                             "or not at all")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default 0)")
    parser.add_argument("--json", action="store_true",
                        help='print {"eer", "eer_low", "eer_high", "min_dcf", "p_target", "trials", "targets", '
                             '"speakers"}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.report import stats
    from harness.report.item_stats import MIN_CLUSTERS, TrialStats

    if not 0 < args.p_target < 1:
        raise HarnessError(f"--p-target {args.p_target} is outside (0, 1); use e.g. 0.01 or 0.05.")
    if args.resamples < 100:
        raise HarnessError("--resamples must be at least 100; the default suits most uses.")
    for path in (args.trials, args.scores):
        if not path.is_file():
            raise HarnessError(f"{path} does not exist; give the path of an existing file.")
    trials, scores = read_trials(args.trials), read_scores(args.scores)
    if not trials:
        raise HarnessError(f"{args.trials} holds no trial; give the trial list.")
    missing = [(a, b) for _, a, b in trials if (a, b) not in scores]
    if missing:
        raise HarnessError(f"{args.scores} has no score for {len(missing)} of the {len(trials)} trials (the first: "
                           f"{missing[0][0]} {missing[0][1]}); score every trial of the list.")
    labels = np.array([label for label, _, _ in trials])
    values = np.array([scores[(a, b)] for _, a, b in trials])
    eer, dcf = equal_error_rate(labels, values), min_dcf(labels, values, args.p_target)

    groups = tuple(a.split("/", 1)[0] for _, a, _ in trials) if args.speaker_of == "path" else None
    if groups is not None and all("/" not in a for _, a, _ in trials):
        log.warning("the enrolment ids have no path part naming a speaker; the interval draws trials one by one "
                    "and understates the spread between speakers (--speaker-of none says so quietly)")
        groups = None
    trial_stats = TrialStats(tuple(f"{k}" for k in range(len(trials))), labels, values[None, :], (0,), groups)
    speakers = trial_stats.n_clusters or 0
    if 0 < speakers < MIN_CLUSTERS:
        log.warning("the enrolment ids name only %d speaker%s, too few to draw whole (at least %d); the interval "
                    "draws trials one by one and understates the spread between speakers", speakers,
                    "" if speakers == 1 else "s", MIN_CLUSTERS)
        trial_stats, speakers = trial_stats.ungrouped(), 0
    interval = stats.bootstrap_ci(trial_stats, n_resamples=args.resamples, seed=args.seed)
    result = {"eer": eer, "eer_low": interval.low, "eer_high": interval.high, "min_dcf": dcf,
              "p_target": args.p_target, "trials": len(trials), "targets": int(labels.sum()), "speakers": speakers}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    drawn = f"{speakers} enrolment speakers drawn" if speakers else "trials drawn one by one"
    print(f"EER {eer:.2f} % [{interval.low:.2f}, {interval.high:.2f}] (95 % interval, {drawn}, "
          f"{args.resamples} resamples)")
    print(f"minDCF {dcf:.4f} (p_target {args.p_target:g})")
    print(f"{len(trials)} trials, {int(labels.sum())} target")
    return 0
