"""The EER of many bootstrap draws: the blocked layout (:class:`RocLayout`, the leaderboard's way) against a
running sum over every sorted trial per draw, on the same draws; prints both wall times, their ratio and
the largest difference of the EERs (they must agree), for one VoxCeleb1-O-sized trial list. Then the same
for draws of whole enrolment speakers (40, as VoxCeleb1-O has): the expanded per-trial weights against the
per-speaker counts (:meth:`RocLayout.eer_by_cluster`, the leaderboard's way).

    .venv/bin/python benchmarks/bench_trial_bootstrap.py [--trials 37720 --draws 2000 --speakers 40]

Draws are chunked as the leaderboard chunks them (about two million trial counts at a time).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evaluation.verification import RocLayout  # noqa: E402


def running_sum_eer(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The baseline: weighted accepts at every distinct score by running sums over all sorted trials."""
    order = np.argsort(-scores, kind="stable")
    ends = np.r_[np.flatnonzero(np.diff(scores[order])), scores.size - 1]
    w = weights[:, order]
    tps = np.cumsum(w * (labels[order] == 1), axis=1)[:, ends]
    fps = np.cumsum(w, axis=1)[:, ends] - tps
    fpr = np.hstack([np.zeros((w.shape[0], 1)), fps / fps[:, -1:]])
    tpr = np.hstack([np.zeros((w.shape[0], 1)), tps / tps[:, -1:]])
    rows = np.arange(w.shape[0])
    k = np.argmax(fpr + tpr >= 1.0, axis=1)
    f0, f1, t0, t1 = fpr[rows, k - 1], fpr[rows, k], tpr[rows, k - 1], tpr[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (t1 - t0) / (f1 - f0)
        crossing = (1.0 - t0 + slope * f0) / (1.0 + slope)
    return 100.0 * np.where(f1 + t1 == 1.0, f1, np.where(f1 == f0, f0, crossing))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=37_720)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--speakers", type=int, default=40, help="enrolment speakers of the clustered draws")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = (np.arange(args.trials) % 2 == 0).astype(int)  # VoxCeleb1-O: half the trials are targets
    scores = np.round(rng.normal(size=args.trials) + 2.0 * labels, 4)  # four decimals: some ties
    chunk = max(1, 2_000_000 // args.trials)
    draws = [np.stack([np.bincount(rng.integers(0, args.trials, args.trials), minlength=args.trials)
                       for _ in range(min(chunk, args.draws - start))]).astype(float)
             for start in range(0, args.draws, chunk)]
    start = time.perf_counter()
    layout = RocLayout(labels, scores)
    blocked = np.concatenate([layout.eer(w) for w in draws])
    t_blocked = time.perf_counter() - start
    start = time.perf_counter()
    baseline = np.concatenate([running_sum_eer(labels, scores, w) for w in draws])
    t_baseline = time.perf_counter() - start
    print(f"{args.trials} trials, {args.draws} draws: running sums {t_baseline:.2f} s, blocked {t_blocked:.2f} s "
          f"({t_baseline / t_blocked:.1f}x); largest EER difference {np.abs(blocked - baseline).max():.2e} points")

    # the leaderboard's draws by enrolment speaker: each trial weighted by its speaker's count, from the
    # expanded [draws × trials] weights, or from the per-speaker counts through per-block products
    codes = np.arange(args.trials) % args.speakers
    cluster_draws = [np.stack([np.bincount(rng.integers(0, args.speakers, args.speakers), minlength=args.speakers)
                               for _ in range(w.shape[0])]).astype(float) for w in draws]
    clustered = RocLayout(labels, scores, clusters=codes)
    start = time.perf_counter()
    expanded = np.concatenate([clustered.eer(c[:, codes]) for c in cluster_draws])
    t_expanded = time.perf_counter() - start
    start = time.perf_counter()
    by_cluster = np.concatenate([clustered.eer_by_cluster(c) for c in cluster_draws])
    t_by_cluster = time.perf_counter() - start
    same = np.array_equal(expanded, by_cluster, equal_nan=True)
    print(f"drawn by {args.speakers} speakers: expanded weights {t_expanded:.2f} s, per-speaker block products "
          f"{t_by_cluster:.2f} s ({t_expanded / t_by_cluster:.1f}x); identical EERs: {same}")


if __name__ == "__main__":
    main()
