"""The models of a run: each one's leaderboard label, seed, stage key and folder, and picking one of them.

A model is the upstream, finetune or merge stage whose folder (``model.safetensors`` + ``upstream.json``)
an evaluation read. Its label is the leaderboard's (:func:`harness.report.leaderboard.rows.model_rows`),
so ``harness export --model "pr · speech_ft alpha=0.25"`` names what the table shows. Model stages that no
evaluation read (a sequential chain's links) are listed after them, labelled by their stage title.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.result_rows import Outputs, distinct_outputs, open_store
from harness.core.stage_kinds import StageKind
from harness.report.leaderboard.rows import model_rows, row_key

#: stage kinds whose folder holds a model
MODEL_KINDS = (StageKind.UPSTREAM, StageKind.FINETUNE, StageKind.MERGE)


@dataclass(frozen=True)
class RunModel:
    label: str  # the leaderboard's model label, or the stage title of a model no evaluation read
    upstream: str
    seed: int | None
    stage: str  # the key of the stage that wrote the model
    kind: str
    folder: Path
    evaluated: bool

    @property
    def full_label(self) -> str:
        """``upstream · label``, as the leaderboard names a row when a run has several upstreams."""
        return f"{self.upstream} · {self.label}" if self.upstream else self.label

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder)}


def run_models(output: Path) -> list[RunModel]:
    """Every model of the run in ``output``: evaluated ones in leaderboard order (by seed), then the rest."""
    output = Path(output)
    with open_store(output) as store:
        done = store.stages(status="done")
    by_key = {s.key: s for s in done}
    evals = [s for s in done if s.kind == StageKind.EVALUATE and s.labels.get("downstream")]
    # row -> seed -> model stage key
    found: dict[tuple, dict[int, str]] = {}
    for st in evals:
        model_key = st.inputs.get("model")
        if model_key in by_key:
            found.setdefault(row_key(st.labels), {})[int(st.labels.get("seed", 0))] = model_key
    out: list[RunModel] = []
    for key, row in model_rows(evals).items():
        for seed, stage_key in sorted(found.get(key, {}).items()):
            stage = by_key[stage_key]
            out.append(RunModel(row.model, row.upstream, seed, stage_key, stage.kind, output / stage_key, True))
    listed = {m.stage for m in out}
    for st in done:
        if st.kind in MODEL_KINDS and st.key not in listed and (output / st.key).is_dir():
            seed = st.labels.get("seed")
            out.append(RunModel(st.name, str(st.labels.get("upstream", "")), int(seed) if seed is not None else None,
                                st.key, st.kind, output / st.key, False))
    return out


def models_of(outputs: Outputs) -> list[RunModel]:
    """The models of each output folder in ``outputs`` in turn (:func:`run_models`); a model stage found in
    several folders (a copy) is listed once, from the first."""
    found: dict[str, RunModel] = {}
    for output in distinct_outputs(outputs):
        for model in run_models(output):
            found.setdefault(model.stage, model)
    return list(found.values())


def models_named(output: Path, which: str, seed: int | None = None) -> list[RunModel]:
    """The models of the run in ``output`` that ``which`` names, one per seed (of ``seed`` only, where given): by
    label (``upstream · label`` too), stage key (or a prefix of 6 characters or more) or folder; one sentence
    when none is, or when models of several upstreams are."""
    models = run_models(output)
    text = which.strip()
    path = Path(text)
    matches = [m for m in models if text in (m.label, m.full_label)]
    if not matches and len(text) >= 6:
        matches = [m for m in models if m.stage.startswith(text)]
    if not matches and path.is_dir():
        matches = [m for m in models if m.folder.resolve() == path.resolve()]
    if seed is not None:
        matches = [m for m in matches if m.seed == seed]
    if not matches:
        labels = sorted({m.label for m in models if m.evaluated})
        shown = "; ".join(f'"{label}"' for label in labels) or "none"
        extra = f" with seed {seed}" if seed is not None else ""
        raise HarnessError(f"{output} has no model {which!r}{extra}; `harness models {output}` lists them "
                           f"(labels: {shown}).")
    if len({m.upstream for m in matches}) > 1:
        names = ", ".join(sorted({f'"{m.full_label}"' for m in matches}))
        raise HarnessError(f"{which!r} names a model of several upstreams; give one of {names}.")
    return matches


def find_model(output: Path, which: str, seed: int | None = None) -> RunModel:
    """The model of the run in ``output`` that ``which`` names (see :func:`models_named`); ``seed`` picks one of
    several seeds."""
    matches = models_named(output, which, seed)
    if len(matches) > 1:
        seeds = ", ".join(str(m.seed) for m in matches)
        raise HarnessError(f"{which!r} has one model per seed ({seeds}); pick one with --seed.")
    return matches[0]
