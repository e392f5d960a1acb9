"""Speaker diarization scoring on frames: speaker activity from speech turns, the post-processing
of frame posteriors, and the diarization error rate.

A recording's reference is a list of speech turns ``[speaker, start, end]`` (seconds). On frames
of ``frame_seconds`` a turn covers frames ``rint(start / frame_seconds)`` up to (not including)
``rint(end / frame_seconds)``, as s3prl's diarization dataset marks them; one column per speaker
(in sorted order).

The DER is NIST's: over scored frames, ``(missed + false alarm + confusion) / reference speaker
time``, where per frame with ``n_ref`` reference and ``n_sys`` system speakers, missed speaker time
is ``max(n_ref − n_sys, 0)``, false alarm ``max(n_sys − n_ref, 0)`` and confusion ``min(n_ref,
n_sys) − n_correct``, ``n_correct`` counting the reference speakers matched to an active system
speaker under the one-to-one mapping of system to reference speakers that maximises their total
overlap (found with :func:`scipy.optimize.linear_sum_assignment`; md-eval and dscore map the same
way). Overlapped speech is scored and there is no forgiveness collar (SUPERB's setting), so the
frame DER equals dscore's up to the rounding of turn boundaries to frames.

Post-processing (s3prl ``make_rttm.py``): a speaker is active where its posterior exceeds the
threshold, then a median filter of odd length runs over each speaker's decisions
(``scipy.signal.medfilt``). SUPERB reports the lowest DER over thresholds 0.3–0.7 and median
lengths 1 and 11 (:data:`THRESHOLDS`, :data:`MEDIANS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: s3prl ``score.sh``: the decision thresholds and median filter lengths it scores
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MEDIANS = (1, 11)

Turn = tuple[str, float, float]


def turn_speakers(turns: Sequence[Sequence]) -> list[str]:
    """The speakers of ``turns``, sorted: the order of the activity columns."""
    return sorted({str(t[0]) for t in turns})


def frame_count(duration: float, frame_seconds: float) -> int:
    """Frames of a recording, as s3prl counts them (``int(duration / frame_seconds)``)."""
    return int(duration / frame_seconds + 1e-9)


def activity(turns: Sequence[Sequence], n_frames: int, frame_seconds: float,
             n_columns: int | None = None) -> np.ndarray:
    """``n_frames × n_columns`` 0/1 speaker activity of ``turns`` (columns: :func:`turn_speakers`, then
    empty columns up to ``n_columns``)."""
    speakers = turn_speakers(turns)
    column = {s: k for k, s in enumerate(speakers)}
    out = np.zeros((n_frames, max(len(speakers), n_columns or 0)), dtype=np.int8)
    for speaker, start, end in turns:
        first = int(np.rint(float(start) / frame_seconds))
        last = int(np.rint(float(end) / frame_seconds))
        out[max(first, 0) : max(min(last, n_frames), 0), column[str(speaker)]] = 1
    return out


def decide(posteriors: np.ndarray, threshold: float, median: int) -> np.ndarray:
    """0/1 activity from ``T × S`` posteriors: above ``threshold``, then a median filter of ``median``
    (odd) frames with zero padding, as :func:`scipy.signal.medfilt`. On 0/1 values the median of a
    window is 1 exactly when more than half of it is, so it is computed from running sums: equal to
    medfilt, and several times faster over the ten settings of every dev evaluation."""
    active = (posteriors > threshold).astype(np.int32)
    if median <= 1 or not len(active):
        return active.astype(np.int8)
    half = median // 2
    sums = np.cumsum(np.pad(active, ((half + 1, half), (0, 0))), axis=0)
    return (sums[median:] - sums[:-median] > half).astype(np.int8)


@dataclass(frozen=True)
class ErrorCounts:
    """A recording's diarization errors in frames (sums over recordings add up)."""

    scored: int  # reference speaker frames (Σ n_ref)
    missed: int
    false_alarm: int
    confusion: int

    @property
    def errors(self) -> int:
        return self.missed + self.false_alarm + self.confusion

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.scored + other.scored, self.missed + other.missed,
                           self.false_alarm + other.false_alarm, self.confusion + other.confusion)


def best_mapping(reference: np.ndarray, system: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (reference column, system column) of the one-to-one mapping with the most overlap."""
    from scipy.optimize import linear_sum_assignment

    overlap = reference.astype(np.int64).T @ system.astype(np.int64)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def error_counts(reference: np.ndarray, system: np.ndarray) -> ErrorCounts:
    """The errors of ``system`` against ``reference`` activity (``T × S`` each; columns may differ in number)."""
    n = min(len(reference), len(system))
    reference, system = reference[:n].astype(np.int64), system[:n].astype(np.int64)
    n_ref, n_sys = reference.sum(axis=1), system.sum(axis=1)
    correct = np.zeros(n, dtype=np.int64)
    for r, s in best_mapping(reference, system):
        correct += reference[:, r] & system[:, s]
    return ErrorCounts(
        scored=int(n_ref.sum()),
        missed=int(np.maximum(n_ref - n_sys, 0).sum()),
        false_alarm=int(np.maximum(n_sys - n_ref, 0).sum()),
        confusion=int((np.minimum(n_ref, n_sys) - correct).sum()),
    )


def segments(active: np.ndarray, frame_seconds: float) -> list[tuple[int, float, float]]:
    """``(column, start, end)`` of each run of active frames, in seconds, ordered by start."""
    out = []
    for column in range(active.shape[1]):
        edges = np.diff(np.concatenate([[0], active[:, column].astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        out.extend((column, round(a * frame_seconds, 4), round(b * frame_seconds, 4)) for a, b in zip(starts, ends,
                                                                                                     strict=True))
    return sorted(out, key=lambda seg: (seg[1], seg[0]))


def rttm_lines(recording: str, turns: Sequence[Sequence]) -> list[str]:
    """NIST RTTM ``SPEAKER`` lines of ``turns`` (what dscore and md-eval read)."""
    return [f"SPEAKER {recording} 1 {float(start):.2f} {float(end) - float(start):.2f} <NA> <NA> {speaker} <NA> <NA>"
            for speaker, start, end in turns]
