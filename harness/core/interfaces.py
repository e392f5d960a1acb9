"""The abstract interface of each plugin kind: the few methods the core really calls.

Each interface is generic over the plugin's ``Params`` (:class:`harness.core.plugin.Plugin`).

The model side of the upstream contract (:class:`UpstreamModel`, a ``torch.nn.Module``) lives in
:mod:`harness.core.model_types`, so this module imports no torch.

The device contract:

- Plugins build on the CPU: :meth:`UpstreamPlugin.build` and ``from_config`` return a model on the CPU.
- The stage runner moves the upstream to ``ctx.device`` before it calls a finetune or downstream
  plugin (and brings it back to the CPU to save it). ``ctx.device`` is what ``harness run --device``
  asked for (``auto``, the default, is the GPU when there is one), always with its index for a GPU.
- A plugin that makes tensors or heads (noise, targets, masks, probes, optimiser state) puts them on
  ``ctx.device``; batches read on the CPU move there before they meet the model.
- Merges and corpora never touch an accelerator: merge plugins get CPU tensors, corpus plugins and
  the building of θ0 get ``ctx.device`` = CPU.
- Which stage kinds use the accelerator is declared once, in
  :data:`harness.core.stage_kinds.ACCELERATOR_KINDS` (``finetune`` and ``evaluate``); an executor
  reads it to give every other kind the CPU and may overlap those stages with accelerator stages.
  The device is not part of a stage's key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from harness.core.manifest import PreparedCorpus
from harness.core.plugin import EXECUTION_ONLY, Direction, InputPath, InputPathMarker, P, Plugin, PluginParams
from harness.core.stage import StageContext

if TYPE_CHECKING:  # annotations only: registering plugins must not import torch
    import torch

    from harness.core.model_types import UpstreamModel

__all__ = [
    "EXECUTION_ONLY", "Batch", "CorpusPlugin", "Direction", "DownstreamPlugin", "EvalResult", "FinetunePlugin",
    "FinetuneResult", "InputPath",
    "InputPathMarker", "MergePlugin", "Plugin", "PluginParams", "SpecAugSettings", "Task", "TaskPlugin",
    "TensorSource", "UpstreamPlugin",
]

# --------------------------------------------------------------------------- upstream


class UpstreamPlugin(Plugin[P]):
    """Builds an :class:`UpstreamModel` from a checkpoint path or a named preset."""

    kind = "upstream"
    #: False for fixed front ends (FBank): the planner never fine-tunes or merges them
    trainable: ClassVar[bool] = True
    #: True for the reference front end of the SUPERB score (FBank): a ``measured`` reference
    #: adds it to a recipe that lacks it, and its results are the score's zero
    baseline: ClassVar[bool] = False

    @abstractmethod
    def build(self, params: P, seed: int) -> UpstreamModel:
        """The model described by ``params`` (a checkpoint, or a preset initialised from ``seed``)."""

    @abstractmethod
    def from_config(self, config: dict[str, Any]) -> UpstreamModel:
        """An uninitialised model of the architecture ``config`` (from :meth:`UpstreamModel.config`)."""

    #: formats of the family's own that :meth:`export` writes (``"hf"``: a transformers folder); every
    #: model also exports as the harness's model folder, which needs nothing from the plugin
    export_formats: ClassVar[tuple[str, ...]] = ()

    def export(self, model: UpstreamModel, fmt: str, out_dir: Path) -> None:
        """Write ``model`` into ``out_dir`` in ``fmt``, one of :attr:`export_formats`."""
        raise NotImplementedError(f"{self.name} exports no {fmt!r} format")


# --------------------------------------------------------------------------- corpus


class CorpusPlugin(Plugin[P]):
    """Prepares a manifest from a local root (or generates the audio, for embedded corpora).

    ``prepare`` writes into ``out_dir`` the layout :class:`harness.core.manifest.PreparedCorpus` reads:
    ``<split>.jsonl`` per split, ``vocab.json`` and ``meta.json``.
    """

    kind = "corpus"
    #: label field -> the parameter setting that makes this corpus provide it (the plan-time error names it)
    label_options: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def prepare(self, params: P, out_dir: Path, ctx: StageContext) -> None:
        """Write the manifests for every split into ``out_dir``."""

    def provided_labels(self, params: P) -> tuple[str, ...] | None:
        """The label fields every manifest prepared with ``params`` has, or None when only preparing tells.

        Declared, they let the recipe refuse at plan time a downstream whose labels the corpus lacks.
        """
        return None


# --------------------------------------------------------------------------- downstream


@dataclass(frozen=True)
class SpecAugSettings:
    """What SpecAugment draws; the defaults are SUPERB's ASR setting. s3prl's adaptive time masks
    (``adaptive_number_ratio`` / ``adaptive_size_ratio`` > 0, SUPERB's SF setting): over T padded frames,
    min(int(ratio · T), ``max_time_masks``) masks of width below min(the width's bound, int(ratio · T))."""

    time_warp_window: int = 5
    freq_mask_width: tuple[int, int] = (0, 50)
    num_freq_masks: int = 4
    time_mask_width: tuple[int, int] = (0, 40)
    num_time_masks: int = 2
    adaptive_number_ratio: float = 0.0
    adaptive_size_ratio: float = 0.0
    max_time_masks: int = 20


@dataclass
class Batch:
    """A padded batch of utterances as a head sees it.

    ``features``: B×T×D (a weighted sum of hidden states, or one hidden state), ``lengths``: valid
    frames (B,), ``utterances``: the manifest rows, ``pooled``: B×D pooled features when the task
    trains on cached time means instead of frames (then ``features`` is None).
    """

    features: torch.Tensor | None
    lengths: torch.Tensor | None
    utterances: list[dict[str, Any]]
    pooled: torch.Tensor | None = None


class Task(ABC):
    """A task defined once: its labels, head, loss and metric, used frozen by a downstream and
    trainable by supervised fine-tuning.

    ``metrics`` maps metric name to its direction; ``primary_metric`` selects the best checkpoint on dev.
    ``pooled`` says the head starts with mean pooling over valid frames followed by a linear map,
    so a cache of per-layer time means is exact. ``specaug``: SpecAugment applied to a probe's
    weighted-sum features while it trains (:mod:`harness.training.specaug`), or None.
    """

    name: str
    label_fields: tuple[str, ...] = ()
    metrics: dict[str, Direction] = {}
    primary_metric: str = ""
    pooled: bool = False
    specaug: SpecAugSettings | None = None

    @abstractmethod
    def build_head(self, input_dim: int) -> torch.nn.Module:
        """The task prediction model for features of size ``input_dim``."""

    @abstractmethod
    def loss(self, head: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The training loss of ``head`` on ``batch`` (a scalar)."""

    @abstractmethod
    def predict(self, head: torch.nn.Module, batch: Batch) -> list[dict[str, Any]]:
        """One record per utterance (id, prediction, reference, per-item scores) for aggregation."""

    @abstractmethod
    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Corpus-level metrics from per-item records (e.g. PER = summed edits / summed length)."""

    def scored_items(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The per-item results the leaderboard resamples (``{"id", "stats"}``, see
        :mod:`harness.report.item_stats`): by default one per record, called after :meth:`aggregate`.
        A task whose metric is over other items (ASV: trials between utterances) returns those."""
        return [{"id": r["id"], "stats": r["stats"]} for r in records]

    def length_key(self, row: dict[str, Any]) -> float:
        """What sorted batches order utterances by (``sorted_batches``): here the audio's duration."""
        return float(row["duration"])


@dataclass
class EvalResult:
    """What an evaluate stage returns.

    ``metrics`` are named ``metric`` (the stage adds the ``task.`` prefix), in the units of the
    SUPERB tables (percent for PER, WER, CER, accuracy, F1 and ABX error).
    """

    metrics: dict[str, float]
    directions: dict[str, Direction]
    n_items: int
    items: list[dict[str, Any]] = field(default_factory=list)
    layer_weights: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: what the model predicted per test item (``id``, ``ref``, ``hyp``, and ``fold`` where there are
    #: folds), saved as ``predictions.jsonl`` in the stage folder
    predictions: list[dict[str, Any]] = field(default_factory=list)


class DownstreamPlugin(Plugin[P]):
    """One SUPERB task (or ABX) evaluated on a frozen upstream."""

    kind = "downstream"
    #: place of the task's columns in tables (SUPERB's order: content, speaker, paralinguistics,
    #: semantics, then ABX); ties are broken by name
    order: ClassVar[int] = 100
    #: manifest fields the corpus must have (e.g. ("phones",))
    label_fields: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def evaluate(
        self, upstream: UpstreamModel, corpus: PreparedCorpus, params: P, ctx: StageContext
    ) -> EvalResult:
        """Train the probe on ``train``, select on ``dev``, report on ``test``."""

    def make_task(self, corpus: PreparedCorpus, params: P) -> Task:
        """The task object shared with supervised fine-tuning; ABX has none."""
        raise NotImplementedError(f"downstream {self.name!r} has no trainable task")


class TaskPlugin(Plugin[P]):
    """A trainable task that is not a downstream (frame phone classification, ``pc``): supervised
    fine-tuning names it as ``task:`` beside the downstreams' tasks."""

    kind = "task"

    @abstractmethod
    def make_task(self, corpus: PreparedCorpus, params: P, frame_shift: float) -> Task:
        """The task on ``corpus`` for an upstream whose frames are ``frame_shift`` seconds apart."""


# --------------------------------------------------------------------------- finetune


@dataclass
class FinetuneResult:
    """What a fine-tuning scenario returns: its best dev ``metrics`` and each one's direction."""

    metrics: dict[str, float]
    directions: dict[str, Direction]


class FinetunePlugin(Plugin[P]):
    """A fine-tuning scenario: θ0 -> θft (stable fine-tuning by default)."""

    kind = "finetune"

    @abstractmethod
    def finetune(
        self,
        upstream: UpstreamModel,
        corpora: dict[str, PreparedCorpus],
        params: P,
        ctx: StageContext,
    ) -> FinetuneResult | dict[str, float]:
        """Train ``upstream`` in place; return its dev metrics with their directions (may be empty).

        A plain ``{metric: value}`` is taken as metrics where higher is better.

        ``corpora`` maps the recipe's corpus names to prepared corpora (those the entry names).
        """


# --------------------------------------------------------------------------- merge


class TensorSource(Protocol):
    """A model's tensors read one name at a time, like an open safetensors handle."""

    def keys(self) -> Sequence[str]: ...

    def get_tensor(self, name: str) -> torch.Tensor: ...


class MergePlugin(Plugin[P]):
    """A function of state dicts: (θ0, [θft...], params) -> θ, streamed tensor by tensor.

    The engine calls :meth:`prepare` once, then :meth:`merge_tensor` for each merged tensor with
    what ``prepare`` returned; a plugin keeps no state between calls.
    """

    kind = "merge"
    #: "each": applied to every single fine-tuned model; "group": to the listed models together;
    #: "chain": the planner expands it into finetune -> merge links (sequential).
    mode: ClassVar[Literal["each", "group", "chain"]] = "each"

    def prepare(self, base: TensorSource, finetuned: list[TensorSource], params: P) -> Any:
        """The state the method needs across tensors (TIES' model-wide thresholds), None by default.

        ``base`` and ``finetuned`` hold the merged tensors only, as float32, so a whole-model pass
        reads one tensor at a time.
        """
        return None

    @abstractmethod
    def merge_tensor(
        self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor], params: P, state: Any
    ) -> torch.Tensor:
        """The merged value of one tensor (float32); ``state`` is what :meth:`prepare` returned."""

    def shortcut(self, params: P, n_models: int) -> Literal["base", "model"] | None:
        """Say when the merge returns θ0 (``"base"``) or the single fine-tuned model (``"model"``)
        unchanged (linear α = 0 / α = 1): the planner then reuses that model instead of a stage."""
        return None

    def merges(self, name: str, tensor: torch.Tensor) -> bool:
        """Whether a tensor is merged; others are copied from θ0 (integer buffers by default)."""
        return tensor.is_floating_point()
