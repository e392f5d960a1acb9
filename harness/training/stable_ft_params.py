"""The torch-free half of stable fine-tuning: the shared training parameters (:class:`StableFTParams`)
and the choice of corpus, rows and task. Fine-tuning plugins declare their parameters with these
without loading torch; :mod:`harness.training.stable_ft` trains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from harness.core.errors import StageError
from harness.core.interfaces import EXECUTION_ONLY, PluginParams, Task
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.stage import StageContext
from harness.core.suggest import suggest

if TYPE_CHECKING:
    from harness.core.model_types import UpstreamModel
    from harness.training.loop import TrainConfig

__all__ = ["StableFTParams", "pick_corpus", "resolve_task", "split_rows", "train_config"]


def _compile_setting(value: Any) -> Any:
    """``compile``'s three settings, refused in one sentence otherwise (not one per member of the union)."""
    if isinstance(value, bool) or value == "graphs":
        return value
    raise ValueError("use true, false or graphs")


class StableFTParams(PluginParams):
    """Training knobs shared by the fine-tuning scenarios (defaults: the paper's stable fine-tuning)."""

    steps: int = Field(1000, ge=1, description="optimizer steps")
    lr: float = Field(1e-4, gt=0, description="peak learning rate")
    batch_seconds: float = Field(80.0, gt=0, description="padded seconds of audio per forward batch")
    max_items: int | None = Field(None, ge=1, description="at most this many utterances per batch")
    accumulate: int = Field(1, ge=1, description="batches per optimizer step")
    beta: float = Field(0.1, ge=0, le=1, description="share of the steps that train the head alone")
    freeze_cnn: bool = Field(True, description="keep the downsampling module frozen throughout")
    l2_lambda: float = Field(0.0, ge=0, description="weight of the L2 penalty towards θ0")
    schedule: Literal["constant", "linear", "speech_ft", "cosine"] = "speech_ft"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every: int | None = Field(None, ge=1, description="dev evaluation period (None: at the end only)")
    dev_items: int | None = Field(400, ge=1, description="dev utterances used for model selection")
    # how the stage runs, not what it trains: resuming from a checkpoint gives the same weights
    checkpoint_every: Annotated[int | None, EXECUTION_ONLY] = Field(
        None, ge=1, description="checkpoint period in steps, to resume a stopped run")
    amp: bool = Field(True, description="mixed precision on CUDA")
    gradient_checkpointing: Annotated[bool, EXECUTION_ONLY] = Field(
        False, description="recompute activations in the backward pass: less memory, same gradients")
    max_seconds: float | None = Field(None, gt=0, description="use only the first seconds of each utterance")
    # left out of the dumped parameters (and so of the stage key) while off: existing keys stay as they were
    compile: Annotated[bool | Literal["graphs"], BeforeValidator(_compile_setting)] = Field(
        False, exclude_if=lambda on: not on,
        description="run the upstream's transformer layers through torch.compile (faster steps after a warm-up); "
                    "graphs: also as CUDA graphs (torch's reduce-overhead mode), batches padded up to whole "
                    "half-seconds so that shapes repeat")
    cudnn_autotune: bool = Field(False, exclude_if=lambda on: not on,
                                 description="CUDA: cuDNN autotuning, batches padded up to whole half-seconds")

    def tuning_label(self) -> str:
        """How a model fine-tuned with these settings is labelled unmerged, in the paper's words:
        Stable-FT (head alone first, CNN frozen), regular FT (neither), else fine-tuned (one of the
        two); "+ L2" with the penalty towards θ0 (the paper's regularization baseline)."""
        if self.beta > 0 and self.freeze_cnn:
            kind = "Stable-FT"
        else:
            kind = "regular FT" if self.beta == 0 and not self.freeze_cnn else "fine-tuned"
        return kind + (" + L2" if self.l2_lambda > 0 else "")


def train_config(params: StableFTParams) -> TrainConfig:
    """The training loop's configuration from the scenario's parameters."""
    from harness.training.loop import TrainConfig  # torch: loaded when a scenario trains

    return TrainConfig(
        steps=params.steps,
        lr=params.lr,
        schedule=params.schedule,
        warmup_ratio=params.warmup_ratio,
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        accumulate=params.accumulate,
        eval_every=params.eval_every,
        checkpoint_every=params.checkpoint_every,
        amp=params.amp,
        cudnn_autotune=params.cudnn_autotune,
    )


def pick_corpus(corpora: dict[str, PreparedCorpus], name: str | None, who: str) -> PreparedCorpus:
    """The corpus ``name`` among those the stage received (the only one when ``name`` is None)."""
    if name is None:
        if len(corpora) != 1:
            raise StageError(f"{who} needs `corpus:` to say which of {', '.join(sorted(corpora)) or 'none'} to use.")
        return next(iter(corpora.values()))
    if name not in corpora:
        raise StageError(f"{who} names corpus {name!r} but the stage has {', '.join(sorted(corpora)) or 'none'}.")
    return corpora[name]


def split_rows(corpus: PreparedCorpus, task_name: str, role: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows playing ``role`` for ``task_name`` (a stable subset of ``limit`` rows, evenly spaced)."""
    rows = corpus.utterances(corpus.split_for(task_name, role))
    if not rows:
        raise StageError(f"corpus {corpus.name!r} has no utterances in its {role} split for {task_name}.")
    if limit is not None and len(rows) > limit:
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def resolve_task(
    upstream: UpstreamModel, corpus: PreparedCorpus, name: str, task_params: dict, ctx: StageContext
) -> Task:
    """The trainable task ``name`` on ``corpus``: a task plugin's (looked up first), else a downstream
    plugin's; ``task_params`` are that plugin's parameters."""
    plugins = ctx.plugins
    kind = plugins.task_kind(name)
    if kind == "task":
        task_plugin = plugins.create("task", name)
        params = validate_params(task_plugin.Params, task_params, f"task_params of {name}")
        task = task_plugin.make_task(corpus, params, upstream.frame_shift)  # type: ignore[attr-defined]
    elif kind == "downstream":
        downstream = plugins.create("downstream", name)
        params = validate_params(downstream.Params, task_params, f"task_params of {name}")
        task = downstream.make_task(corpus, params)  # type: ignore[attr-defined]
    else:
        choices = plugins.task_names()
        hint = suggest(name, choices)
        raise StageError(
            f"there is no task named {name!r}: name a task or downstream plugin "
            f"({', '.join(choices) or 'none is installed'}){hint if hint.endswith('?') else '.'}"
        )
    corpus.require(tuple(task.label_fields), f"fine-tuning on {name}")
    return task
