"""Where a run's time went: stage durations by kind and plugin, and how many stages ran at once.

A store can hold several runs (a demo, then more seeds into the same folder), so the wall time is
the *busy* time, the union of the stages' intervals: the gaps between runs do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.store import StageRow


@dataclass(frozen=True)
class StageTime:
    """One timed stage."""

    key: str
    kind: str
    plugin: str
    name: str
    seconds: float


@dataclass(frozen=True)
class KindTime:
    """The stages of one kind and plugin: how many, and their summed duration."""

    kind: str
    plugin: str
    stages: int
    seconds: float


@dataclass(frozen=True)
class StageTimes:
    """A store's stage times: the sum of durations, the busy wall time, by kind, the longest stages."""

    stage_seconds: float
    busy_seconds: float
    by_kind: list[KindTime] = field(default_factory=list)
    longest: list[StageTime] = field(default_factory=list)
    untimed: int = 0  # stages without a start and an end (running, failed before starting)

    @property
    def concurrency(self) -> float:
        """Stages running at once on average while any ran (1.0 for a sequential run)."""
        return self.stage_seconds / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "stage_seconds": self.stage_seconds, "busy_seconds": self.busy_seconds,
            "concurrency": self.concurrency, "untimed": self.untimed,
            "by_kind": [vars(k) for k in self.by_kind], "longest": [vars(s) for s in self.longest],
        }


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def stage_times(stages: list[StageRow], longest: int = 10) -> StageTimes:
    """The times of the stages that ran to an end (``duration``, ``started`` and ``ended`` set)."""
    timed = [s for s in stages if s.duration is not None and s.started is not None and s.ended is not None]
    groups: dict[tuple[str, str], list[float]] = {}
    for s in timed:
        groups.setdefault((s.kind, s.plugin), []).append(s.duration)
    by_kind = sorted((KindTime(kind, plugin, len(d), sum(d)) for (kind, plugin), d in groups.items()),
                     key=lambda k: (-k.seconds, k.kind, k.plugin))
    ranked = sorted(timed, key=lambda s: (-s.duration, s.key))[:longest]
    return StageTimes(
        stage_seconds=sum(s.duration for s in timed),
        busy_seconds=busy_seconds([(s.started, s.ended) for s in timed]),
        by_kind=by_kind,
        longest=[StageTime(s.key, s.kind, s.plugin, s.name, s.duration) for s in ranked],
        untimed=len(stages) - len(timed),
    )
