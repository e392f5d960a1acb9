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

RTTM files (``SPEAKER`` lines) are read and written here too; :func:`score_recording` scores one
recording's turns against the reference's, optionally with NIST's no-score collar around every
reference boundary and without the reference's overlapped speech (``harness der``).

Post-processing (s3prl ``make_rttm.py``): a speaker is active where its posterior exceeds the
threshold, then a median filter of odd length runs over each speaker's decisions
(``scipy.signal.medfilt``). SUPERB reports the lowest DER over thresholds 0.3–0.7 and median
lengths 1 and 11 (:data:`THRESHOLDS`, :data:`MEDIANS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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

    def percent(self, frames: int) -> float:
        """``frames`` in percent of the scored speaker frames (0 where nothing is scored); the DER is
        ``percent(errors)``."""
        return 100.0 * frames / self.scored if self.scored else 0.0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.scored + other.scored, self.missed + other.missed,
                           self.false_alarm + other.false_alarm, self.confusion + other.confusion)


def best_mapping(reference: np.ndarray, system: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (reference column, system column) of the one-to-one mapping with the most overlap."""
    from scipy.optimize import linear_sum_assignment

    overlap = reference.astype(np.int64).T @ system.astype(np.int64)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def error_counts(reference: np.ndarray, system: np.ndarray, scored: np.ndarray | None = None) -> ErrorCounts:
    """The errors of ``system`` against ``reference`` activity (``T × S`` each; columns may differ in
    number), over the frames where ``scored`` is true (all by default; the mapping uses those frames only)."""
    n = min(len(reference), len(system))
    reference, system = reference[:n].astype(np.int64), system[:n].astype(np.int64)
    if scored is not None:
        keep = np.asarray(scored[:n], dtype=bool)
        reference, system = reference[keep], system[keep]
    n_ref, n_sys = reference.sum(axis=1), system.sum(axis=1)
    correct = np.zeros(len(reference), dtype=np.int64)
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
        runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        out.extend((column, round(a * frame_seconds, 4), round(b * frame_seconds, 4)) for a, b in runs)
    return sorted(out, key=lambda seg: (seg[1], seg[0]))


def rttm_lines(recording: str, turns: Sequence[Sequence]) -> list[str]:
    """NIST RTTM ``SPEAKER`` lines of ``turns`` (what dscore and md-eval read), times to 0.1 ms."""
    return [f"SPEAKER {recording} 1 {float(start):.4f} {float(end) - float(start):.4f} <NA> <NA> {speaker} <NA> <NA>"
            for speaker, start, end in turns]


def read_rttm(path: Path) -> dict[str, list[Turn]]:
    """Recording -> its turns ``(speaker, start, end)`` from the ``SPEAKER`` lines of an RTTM file
    (``SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> ...``; other line types are skipped)."""
    from harness.core.errors import HarnessError

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HarnessError(f"cannot read the RTTM file {path} ({exc.strerror or exc}); give an existing file.") \
            from None
    out: dict[str, list[Turn]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        try:
            onset, duration = float(fields[3]), float(fields[4])
            speaker = fields[7]
        except (IndexError, ValueError):
            raise HarnessError(f"{path} line {n} is not 'SPEAKER <file> <channel> <onset> <duration> <NA> <NA> "
                               "<speaker> ...'; fix that line.") from None
        if not (np.isfinite(onset) and np.isfinite(duration)) or onset < 0 or duration < 0:
            raise HarnessError(f"{path} line {n} has a negative or non-finite onset or duration; fix that line.")
        out.setdefault(fields[1], []).append((speaker, onset, onset + duration))
    return out


def scored_frames(turns: Sequence[Sequence], n_frames: int, frame_seconds: float, collar: float = 0.0,
                  ignore_overlaps: bool = False) -> np.ndarray:
    """Which frames count: all but those within ``collar`` seconds of a reference turn's start or end (the
    NIST no-score zone) and, with ``ignore_overlaps``, those where the reference has several speakers."""
    keep = np.ones(n_frames, dtype=bool)
    if collar > 0:
        for _, start, end in turns:
            for edge in (float(start), float(end)):
                first = max(int(np.rint((edge - collar) / frame_seconds)), 0)
                keep[first : int(np.rint((edge + collar) / frame_seconds))] = False
    if ignore_overlaps:
        keep &= activity(turns, n_frames, frame_seconds).sum(axis=1) < 2
    return keep


def score_recording(reference: Sequence[Sequence], system: Sequence[Sequence], frame_seconds: float,
                    collar: float = 0.0, ignore_overlaps: bool = False) -> ErrorCounts:
    """The errors of ``system`` turns against ``reference`` turns of one recording, on frames of
    ``frame_seconds`` (both cover the longer of the two)."""
    end = max((float(t[2]) for t in (*reference, *system)), default=0.0)
    n = int(np.ceil(end / frame_seconds - 1e-9)) + 1
    return error_counts(activity(reference, n, frame_seconds), activity(system, n, frame_seconds),
                        scored_frames(reference, n, frame_seconds, collar, ignore_overlaps))
