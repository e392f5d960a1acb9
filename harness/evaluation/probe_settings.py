"""How a probe trains and on which rows: :class:`ProbeParams` (what a downstream entry may set)
resolved against a protocol table into :class:`ProbeSettings`; the train/dev/test rows of a task
(:func:`task_splits`, :func:`fold_splits`). Imports no torch, so downstream plugins declare their
parameters and protocols without loading the probe itself (:mod:`harness.evaluation.probe`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from harness.core.interfaces import EXECUTION_ONLY, PluginParams
from harness.core.manifest import PreparedCorpus

if TYPE_CHECKING:
    from harness.training.loop import TrainConfig

__all__ = ["CacheMode", "ProbeParams", "ProbeSettings", "fold_splits", "resolve_settings", "task_splits"]

CacheMode = Literal["auto", "off"]
#: a downstream's ``extract_precision`` (:func:`harness.models.inference.extraction_precision`); left out of
#: the dumped parameters (and so of the stage key) while ``fp32``
ExtractPrecision = Annotated[Literal["fp32", "tf32", "bf16"], Field(
    exclude_if=lambda value: value == "fp32",
    description="CUDA: features extracted in fp32 (s3prl's), tf32 (fp32 on TF32 tensor cores) or bf16 "
                "(autocast: 2.6× faster HuBERT Base extraction on an H200, features at bf16 precision); "
                "the CPU extracts in fp32")]


@dataclass
class ProbeSettings:
    """How one probe trains (the plugin's protocol resolved to numbers)."""

    steps: int
    lr: float
    batch_size: int
    accumulate: int = 1
    eval_every: int | None = None
    eval_batch_size: int = 32
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0: Adam)
    decay_every_parameter: bool = False  # biases and norm scales decayed too (s3prl's ASV: torch's AdamW)
    cache: CacheMode = "auto"
    max_frame_gb: float = 4.0
    upstream_batch_seconds: float = 60.0
    dev_ratio: float = 0.2  # folds: share of the non-test rows held out for dev
    max_folds: int | None = None
    compile: bool = False  # run the upstream through torch.compile while extracting
    extract_precision: str = "fp32"  # CUDA: fp32, tf32 or bf16 (harness.models.inference.extraction_precision)
    sorted_batches: bool = False  # s3prl's bucketing instead of random batches
    bucketing: Literal["windows", "buckets"] = "windows"  # its CTC tasks' windows, or its ASR's buckets
    balanced: bool = False  # class-balanced batches drawn with replacement (s3prl's keyword spotting)
    amp: bool = False  # CUDA: the head under bf16 autocast; off for protocol superb (s3prl trains heads in fp32)

    def train_config(self) -> TrainConfig:
        from harness.training.loop import TrainConfig  # torch: loaded when a probe trains

        return TrainConfig(
            steps=self.steps,
            lr=self.lr,
            accumulate=self.accumulate,
            eval_every=self.eval_every,
            max_grad_norm=self.max_grad_norm,
            weight_decay=self.weight_decay,
            decay_every_parameter=self.decay_every_parameter,
            checkpoint_minutes=None,
            amp=self.amp,
        )


class ProbeParams(PluginParams):
    """Parameters every probe downstream accepts: the protocol and overrides of its numbers.

    ``protocol: superb`` is s3prl's setting for the task (steps, learning rate, batch, head sizes);
    ``embedded`` (default) is scaled down so that the embedded corpus evaluates in seconds on a CPU.
    ``cache: off`` runs the upstream on every batch (s3prl's way; for comparisons); it and ``max_frame_gb``
    change how the probe runs, not its numbers, so they are execution-only (finished stages are reused).
    """

    protocol: Literal["embedded", "superb"] = "embedded"
    steps: int | None = Field(None, ge=1, description="optimizer steps (None: the protocol's)")
    lr: float | None = Field(None, gt=0, allow_inf_nan=False, description="learning rate (None: the protocol's)")
    batch_size: int | None = Field(None, ge=1, description="utterances per batch (None: the protocol's)")
    eval_every: int | None = Field(None, ge=1, description="dev evaluation period in steps (None: the protocol's)")
    # where features come from (cached or the upstream on every batch): the same numbers either way
    cache: Annotated[CacheMode, EXECUTION_ONLY] = Field(
        "auto", description="off: run the upstream on every batch (s3prl's way) instead of caching features")
    max_frame_gb: Annotated[float, EXECUTION_ONLY] = Field(
        4.0, gt=0, allow_inf_nan=False, description="frame cache budget; past it the upstream runs on the fly")
    # left out of the dumped parameters (and so of the stage key) while off: existing keys stay as they were
    compile: bool = Field(False, exclude_if=lambda on: not on,
                          description="run the upstream through torch.compile while extracting features")
    extract_precision: ExtractPrecision = "fp32"
    sorted_batches: bool | None = Field(
        None, exclude_if=lambda value: value is None,
        description="train on s3prl's length-sorted buckets instead of random batches "
                    "(None: the protocol's; on for PR, SF and ASR under superb)")
    balanced: bool | None = Field(
        None, exclude_if=lambda value: value is None,
        description="train on class-balanced batches drawn with replacement (None: the protocol's; on for KS)")

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML reads an unquoted ``off`` as false (and ``on`` as true): ``cache: off`` means "off"."""
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value


def resolve_settings(params: ProbeParams, protocols: dict[str, ProbeSettings]) -> ProbeSettings:
    """The protocol's settings with the overrides ``params`` sets."""
    base = protocols[params.protocol]
    changes: dict[str, Any] = {"cache": params.cache, "max_frame_gb": params.max_frame_gb, "compile": params.compile,
                               "extract_precision": params.extract_precision, "amp": params.protocol != "superb"}
    for name in ("steps", "lr", "batch_size", "eval_every", "sorted_batches", "balanced"):
        value = getattr(params, name)
        if value is not None:
            changes[name] = value
    known = {f.name for f in fields(ProbeSettings)}
    return ProbeSettings(**{**{k: getattr(base, k) for k in known}, **changes})


def task_splits(corpus: PreparedCorpus, task: str) -> dict[str, list[dict[str, Any]]]:
    """The rows playing train/dev/test for ``task`` (the corpus's ``task_splits`` or the defaults)."""
    return {role: corpus.utterances(corpus.split_for(task, role)) for role in ("train", "dev", "test")}


def fold_splits(
    rows: list[dict[str, Any]], fold: Any, dev_ratio: float, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Test = the rows of ``fold``; dev = a seeded ``dev_ratio`` of the others; train = the rest."""
    test = [r for r in rows if r.get("fold") == fold]
    rest = [r for r in rows if r.get("fold") != fold]
    perm = np.random.default_rng([seed, 7]).permutation(len(rest))
    n_dev = max(1, int(round(dev_ratio * len(rest))))
    dev_idx = set(perm[:n_dev].tolist())
    return {
        "train": [r for i, r in enumerate(rest) if i not in dev_idx],
        "dev": [r for i, r in enumerate(rest) if i in dev_idx],
        "test": test,
    }
