"""`harness der`: the diarization error rate of a system RTTM against a reference RTTM.

    harness der --reference ref.rttm --system hyp.rttm [--collar 0.25] [--ignore-overlaps]
        [--frame 0.001] [--per-file] [--json]

Scored as the ``sd`` downstream scores (:mod:`harness.evaluation.diarization`): on frames of ``--frame``
seconds (1 ms: boundaries within half a millisecond of dscore's and md-eval's continuous times), the
one-to-one speaker mapping of most overlap per recording, overlapped speech scored unless
``--ignore-overlaps``, and no-score zones of ``--collar`` seconds around each reference boundary. Every
recording of the reference is scored (a recording the system leaves out counts as all missed);
recordings only the system has are left out, with a note. ``--json`` prints the totals in seconds and
the rates in percent.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from harness.core.errors import HarnessError
from harness.evaluation.diarization import ErrorCounts, read_rttm, score_recording

log = logging.getLogger("harness.cli.der")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("der", help="diarization error rate of a system RTTM against a reference RTTM")
    parser.add_argument("--reference", required=True, type=Path, help="the reference RTTM")
    parser.add_argument("--system", required=True, type=Path, help="the system's RTTM")
    parser.add_argument("--collar", type=float, default=0.0,
                        help="seconds not scored on each side of every reference boundary (default 0, SUPERB's)")
    parser.add_argument("--ignore-overlaps", action="store_true", help="leave out where the reference has several "
                        "speakers at once")
    parser.add_argument("--frame", type=float, default=0.001, help="frame length in seconds (default 0.001)")
    parser.add_argument("--per-file", action="store_true", help="also print each recording's rates")
    parser.add_argument("--json", action="store_true",
                        help='print {"der", "missed", "false_alarm", "confusion", "scored_seconds", "files"}')
    parser.set_defaults(func=run)


def rates(counts: ErrorCounts) -> dict[str, float]:
    """DER and its parts in percent of the scored speaker time."""
    return {"der": counts.percent(counts.errors), "missed": counts.percent(counts.missed),
            "false_alarm": counts.percent(counts.false_alarm), "confusion": counts.percent(counts.confusion)}


def run(args: argparse.Namespace) -> int:
    if not 0 < args.frame <= 0.1:
        raise HarnessError(f"--frame {args.frame} is outside (0, 0.1] seconds; use e.g. 0.001 or 0.01.")
    if args.collar < 0:
        raise HarnessError(f"--collar {args.collar} is negative; give 0 or more seconds.")
    reference, system = read_rttm(args.reference), read_rttm(args.system)
    if not reference:
        raise HarnessError(f"{args.reference} holds no SPEAKER lines; give the reference RTTM.")
    extra = sorted(set(system) - set(reference))
    if extra:
        log.warning("%d recording(s) of %s are not in the reference and are left out (the first: %s)",
                    len(extra), args.system, extra[0])
    per_file = {rec: score_recording(turns, system.get(rec, []), args.frame, args.collar, args.ignore_overlaps)
                for rec, turns in sorted(reference.items())}
    total = sum(per_file.values(), ErrorCounts(0, 0, 0, 0))
    if args.json:
        print(json.dumps({**rates(total), "scored_seconds": total.scored * args.frame, "files": len(per_file)},
                         sort_keys=True))
        return 0
    header = f"{'file':<32} {'DER':>7} {'missed':>7} {'FA':>7} {'conf.':>7} {'scored s':>9}"
    print(header)
    rows = list(per_file.items()) if args.per_file else []
    for name, counts in [*rows, ("OVERALL", total)]:
        r = rates(counts)
        print(f"{name:<32} {r['der']:7.2f} {r['missed']:7.2f} {r['false_alarm']:7.2f} {r['confusion']:7.2f} "
              f"{counts.scored * args.frame:9.2f}")
    return 0
