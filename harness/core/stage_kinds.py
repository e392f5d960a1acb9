"""The kinds of stage a plan is made of, and the plugin kind behind each.

A :class:`StageKind` is a ``str``: it compares, hashes, formats and serialises as its value
(``"prepare"``, ...), which is what the results store holds and what users see.
"""

from __future__ import annotations

from enum import Enum


class StageKind(str, Enum):
    """One kind of stage, in plan order: the corpus, θ0, θft, θ, a downstream on a model, the SUPERB score."""

    PREPARE = "prepare"
    UPSTREAM = "upstream"
    FINETUNE = "finetune"
    MERGE = "merge"
    EVALUATE = "evaluate"
    SCORE = "score"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: every stage kind's value, in plan order
STAGE_KINDS: tuple[str, ...] = tuple(kind.value for kind in StageKind)

#: the plugin kind behind each stage kind (score stages use the core's scoring, no plugin)
PLUGIN_KINDS: dict[StageKind, str] = {
    StageKind.PREPARE: "corpus",
    StageKind.UPSTREAM: "upstream",
    StageKind.FINETUNE: "finetune",
    StageKind.MERGE: "merge",
    StageKind.EVALUATE: "downstream",
}

#: The stage kinds that run on the accelerator (``ctx.device``): the runner moves the upstream there and
#: the plugin puts its heads and tensors there. Every other kind (corpora, building θ0, merges, the
#: score) runs on the CPU, so an executor may overlap those stages with accelerator stages.
ACCELERATOR_KINDS: frozenset[str] = frozenset({StageKind.FINETUNE, StageKind.EVALUATE})
