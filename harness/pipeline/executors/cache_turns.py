"""Whose turn it is to fill a feature cache, for executors that run stages at once.

Evaluate stages of one model on one corpus share a feature cache (hidden states computed once, read by
every downstream). Each adds what it lacks, in batches of its own, and float16 features computed in
other batches differ in their last bits; so, to give a sequential run's features, they fill it one
after the other in plan order. A stage may start once every stage before it on its cache has said it
will add nothing more (:meth:`harness.core.stage.StageContext.cache_filled`) or has ended; then they run
side by side.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.core.plan import Stage
from harness.core.stage_kinds import StageKind

__all__ = ["CacheTurns", "feature_cache"]


def feature_cache(stage: Stage) -> tuple[str, str] | None:
    """The (model, corpus) feature cache an evaluate stage fills, if any."""
    if stage.kind != StageKind.EVALUATE:
        return None
    return stage.inputs.get("model", ""), stage.inputs.get("corpus", "")


class CacheTurns:
    """The fill order of ``stages`` (plan order) on their feature caches; ``done`` stages have had theirs."""

    def __init__(self, stages: Iterable[Stage], done: Iterable[str] = ()):
        self._filled: set[str] = set(done)
        self._before: dict[str, list[str]] = {}
        sharers: dict[tuple[str, str], list[str]] = {}
        for stage in stages:
            if (cache := feature_cache(stage)) is not None:
                self._before[stage.key] = list(sharers.setdefault(cache, []))
                sharers[cache].append(stage.key)

    def ready(self, stage: Stage) -> bool:
        """Whether every stage before ``stage`` on its feature cache has filled its part (True off a cache)."""
        return all(key in self._filled for key in self._before.get(stage.key, ()))

    def mark_filled(self, key: str) -> None:
        """Stage ``key`` said it filled its part, or ended (whatever its outcome), or will never run."""
        self._filled.add(key)
