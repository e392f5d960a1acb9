"""The one training loop, shared by fine-tuning scenarios and downstream probes.

:func:`fit` runs ``cfg.steps`` AdamW steps over batches drawn from a sampler (cycled over epochs),
with gradient accumulation, clipping, a learning-rate schedule, mixed precision on CUDA, periodic
dev evaluation with best-on-dev selection, atomic mid-stage checkpoints and exact resume, and
guards: non-finite losses skip their step (too many in a row stop the stage), CUDA out-of-memory
halves the batch and retries (no data is ever skipped), and the thermal guard pauses or stops.

Resume: the checkpoint holds the model, the optimizer, the loss scaler, the sampler's position, the
RNG states (torch, CUDA, numpy, random), the best-so-far weights and counters. The schedule is a
pure function of the step. On CPU a resumed run ends with exactly the weights of an uninterrupted
one. Dev evaluation runs under a saved-and-restored RNG state, so it never shifts training numbers.

Each run's curve (loss and learning rate per step, dev metrics per evaluation) is saved as JSON lines
in ``curves/<name>.jsonl`` of the stage folder (:class:`_Curve`).

The checkpoint file is the stage's (``ctx.save_checkpoint``); ``fit`` keeps its entries under the
key ``"fit"`` (one per call: ``name``, then ``name#1``, ``name#2``... for repeated names) and preserves
the other top-level keys; plugins store their own state there with :func:`update_checkpoint`. A
finished run keeps a small entry (its final weights and result), so a rerun of a stage that was
killed in a later run skips the finished ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from harness.core.errors import StageError, StopRequested
from harness.core.seeding import rng_preserved, rng_state, set_rng_state
from harness.training.thermal import ThermalGuard, default_guard

if TYPE_CHECKING:
    from harness.core.stage import StageContext

log = logging.getLogger("harness.training.loop")

SCHEDULES = ("constant", "linear", "speech_ft", "cosine")
#: the stage-folder subfolder of the training curves (``<run name>.jsonl``)
CURVES = "curves"
CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """What one training run does. ``steps`` counts optimizer steps (each ``accumulate`` batches)."""

    steps: int
    lr: float
    schedule: str = "constant"  # "constant" | "linear" | "speech_ft" | "cosine" (see lr_factor)
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    decay_every_parameter: bool = False  # decay biases and norm scales too (torch's AdamW default)
    max_grad_norm: float | None = 1.0
    accumulate: int = 1
    eval_every: int | None = None  # dev evaluation period in steps (None: only at the end)
    checkpoint_every: int | None = None  # checkpoint period in steps (needs a ctx)
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with loss scaling; fp32 on CPU
    max_bad_steps: int = 10  # non-finite losses in a row before the stage stops
    checkpoint_minutes: float | None = 10.0  # also checkpoint by wall-clock time (needs a ctx)
    betas: tuple[float, float] = (0.9, 0.999)
    # collate the next steps' batches on background threads (pinned on CUDA) while this step runs
    # (:func:`prefetch_depth` steps); the batches and their order are unchanged, so it is left out of
    # the checkpoint's config check
    prefetch: bool = field(default=False, repr=False)
    # CUDA only: cuDNN autotuning (``torch.backends.cudnn.benchmark``) while training; it pays when the
    # batches' shapes repeat (:data:`harness.data.waveforms.AUTOTUNE_BUCKET_SECONDS`). Left out of the
    # checkpoint's config check: the stage key already tells runs with it from runs without
    cudnn_autotune: bool = field(default=False, repr=False)


@dataclass
class FitResult:
    best_metrics: dict[str, float]
    best_step: int
    steps_done: int
    skipped_steps: int
    history: list[dict[str, float]] = field(default_factory=list)  # {"step": s, **dev metrics}
    batch_splits: int = 1  # parts each batch was split into after CUDA out-of-memory (1: never)
    seconds: float = 0.0  # wall-clock time of this call


def lr_factor(schedule: str, step: int, total: int, warmup_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate for 0-based optimizer ``step`` of ``total``.

    ``constant``: warm-up (if ``warmup_ratio``) then flat. ``linear``: warm-up then linear decay to 0.
    ``cosine``: warm-up then cosine decay to 0. ``speech_ft`` (the official Speech-FT schedule):
    linear warm-up over 10 % of the steps (``warmup_ratio`` overrides), constant to 50 %, linear
    decay to 0.
    """
    if schedule not in SCHEDULES:
        raise StageError(f"unknown learning-rate schedule {schedule!r}; use one of {', '.join(SCHEDULES)}.")
    ratio = warmup_ratio if (warmup_ratio or schedule != "speech_ft") else 0.1
    warm = int(round(ratio * total))
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    start = max(warm, int(round(0.5 * total))) if schedule == "speech_ft" else warm
    if step < start:
        return 1.0
    frac = (step - start) / max(1, total - start)
    return 1.0 - frac if schedule in ("linear", "speech_ft") else 0.5 * (1.0 + math.cos(math.pi * frac))


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (dicts, lists, tuples, dataclasses' fields) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    if hasattr(batch, "__dataclass_fields__"):
        for name in batch.__dataclass_fields__:
            setattr(batch, name, move_to(getattr(batch, name), device))
    return batch


def update_checkpoint(ctx: StageContext, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` in the stage checkpoint, keeping everything else in it."""
    state = ctx.load_checkpoint() or {}
    state[key] = value
    ctx.save_checkpoint(state)


# --------------------------------------------------------------------------- helpers


def _device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if not cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over every parameter (a parameter frozen at a step has no gradient and is left alone);
    no weight decay on biases and norm scales (1-d tensors) unless ``decay_every_parameter``."""
    decay = [p for p in model.parameters() if p.ndim >= 2 or cfg.decay_every_parameter]
    no_decay = [p for p in model.parameters() if p.ndim < 2 and not cfg.decay_every_parameter]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise StageError("the model handed to training has no parameters; there is nothing to train.")
    # one fused kernel for all parameters on CUDA (same update rule); the CPU keeps the plain loop, as before
    fused = all(p.is_cuda for g in groups for p in g["params"]) or None
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.steps < 1:
        raise StageError(f"training needs at least one step (got steps={cfg.steps}).")
    if cfg.accumulate < 1:
        raise StageError(f"accumulate must be at least 1 (got {cfg.accumulate}).")
    if not cfg.lr > 0:
        raise StageError(f"the learning rate must be positive (got {cfg.lr}).")
    lr_factor(cfg.schedule, 0, cfg.steps, cfg.warmup_ratio)


def _cycle(sampler: Any) -> Iterator[list[int]]:
    """Batches from ``sampler`` over successive epochs (the sampler tracks epoch and position)."""
    if len(sampler) == 0:
        raise StageError("the training split has no items; check the corpus and its splits.")
    while True:
        yield from sampler


def _split(indices: list[int], parts: int) -> list[list[int]]:
    parts = max(1, min(parts, len(indices)))
    size, extra = divmod(len(indices), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(indices[start:end])
        start = end
    return out


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _NonFinite(Exception):
    """A step's loss or gradient norm is not finite; the message says which."""


@dataclass(frozen=True)
class _PartLoss:
    """One accumulated part's loss (a device scalar, read at the step's sync) and its weight in the mean."""

    value: torch.Tensor
    weight: float


def pin_batch(batch: Any) -> Any:
    """``batch`` with every CPU tensor inside (dicts, lists, tuples, dataclasses) in pinned memory."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, dict):
        return {k: pin_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin_batch(v) for v in batch)
    if hasattr(batch, "__dataclass_fields__"):
        for name in batch.__dataclass_fields__:
            setattr(batch, name, pin_batch(getattr(batch, name)))
    return batch


#: steps collated ahead on a GPU, on as many threads: one thread reads and pads FLAC at about 3,000 to
#: 3,700 audio seconds a second (``benchmarks/bench_prefetch.py`` on a 2-core machine), below what
#: HuBERT Base trains at on an H200 (3,200 s/s measured at 14.5 % MFU, so about 7,700 at the 35 % aimed at)
CUDA_PREFETCH_STEPS = 4


def prefetch_depth(device: torch.device) -> int:
    """Steps whose batches are read and padded ahead while a step runs: one on the CPU, where reading
    competes with the step for the cores, :data:`CUDA_PREFETCH_STEPS` with a GPU."""
    return CUDA_PREFETCH_STEPS if device.type == "cuda" else 1


class _Prefetcher:
    """Hands out each optimizer step's index batches with their collated batches, collating the next
    ``depth`` steps' on ``depth`` background threads meanwhile (and pinning them when ``pin``).

    Threads, not processes: decoding (libsndfile, soxr) and padding (numpy) release the GIL, so the
    threads read in parallel (two threads deliver 1.3–1.5× one on a 2-core machine,
    ``benchmarks/bench_prefetch.py``), and a collated batch needs no pickling. Each collating thread
    runs torch on one intra-op thread: with the default, its padding and pinning copies started
    OpenMP teams of their own beside the training step's, and on 2 cores a tiny HuBERT's training
    loop took 40–47 ms a step against 27–29 ms with one thread (the step alone: 23–28 ms). Stages at
    once need passive OpenMP waits then (:func:`~harness.core.threads.passive_openmp_waits`): the
    collators' extra threads had been what made two stages' spinning teams back off.

    Drawing ahead moves the sampler further than training has got; :attr:`state` is the sampler's
    state after the batches handed out, which is what a checkpoint keeps.
    """

    def __init__(self, batches: Iterator[list[int]], collate: Callable[[list[int]], Any], sampler: Any,
                 per_step: int, pin: bool, depth: int = 1):
        self.batches, self.collate, self.sampler = batches, collate, sampler
        self.per_step, self.pin, self.depth = per_step, pin, max(1, int(depth))
        # torch's thread count is per thread, and a thread takes the last count set when it first runs an
        # operation: this thread's is fixed now, before the collating threads set theirs to one
        self.main_threads = torch.get_num_threads()
        self.pool = ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix="harness-collate",
                                       initializer=torch.set_num_threads, initargs=(1,))
        self.state = sampler.state_dict()
        self.ahead: deque[tuple[list[tuple[list[int], Future]], dict]] = deque()

    def _work(self, indices: list[int]) -> Any:
        batch = self.collate(indices)
        return pin_batch(batch) if self.pin else batch

    def _draw(self) -> tuple[list[tuple[list[int], Future]], dict]:
        """One step's batches, submitted for collation, and the sampler's state once they are drawn."""
        drawn = [next(self.batches) for _ in range(self.per_step)]
        return [(indices, self.pool.submit(self._work, indices)) for indices in drawn], self.sampler.state_dict()

    def take(self) -> list[tuple[list[int], Future]]:
        current, self.state = self.ahead.popleft() if self.ahead else self._draw()
        while len(self.ahead) < self.depth:
            self.ahead.append(self._draw())
        return current

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self.main_threads)  # the count threads started later take, as before


# --------------------------------------------------------------------------- the loop


class _Curve:
    """A training run's curve as JSON lines: ``{"step", "loss", "lr"}`` per optimizer step (``loss`` null
    for a skipped step) and ``{"step", "dev": {metric: value}}`` per dev evaluation. Written in the
    stage's work folder, so that it survives a kill (a resumed run drops what followed its checkpoint),
    and copied to ``curves/<run name>.jsonl`` in the stage folder when the run ends."""

    def __init__(self, ctx: StageContext | None, name: str):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.path = ctx.work_dir / f"curve-{safe}.jsonl" if ctx is not None else None
        self.final = ctx.out_dir / CURVES / f"{safe}.jsonl" if ctx is not None else None

    def keep_until(self, step: int) -> None:
        """Drop what was written after ``step`` (0: everything)."""
        if self.path is None or not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def add(self, **record: Any) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite(record)) + "\n")

    def publish(self) -> None:
        if self.path is not None and self.final is not None and self.path.is_file():
            self.final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, self.final)


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class _Trainer:
    def __init__(
        self, model, loss_fn, sampler, collate, cfg, ctx, evaluate, primary, before_step, thermal, name
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.sampler = sampler
        self.collate = collate
        self.cfg = cfg
        self.ctx = ctx
        self.evaluate = evaluate
        self.primary = primary
        self.before_step = before_step
        self.name = name
        self.device = _device_of(model)
        self.thermal = thermal if thermal is not None else default_guard(self.device)
        self.amp_dtype = _amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.optimizer = _make_optimizer(model, cfg)
        self.step = 0
        self.skipped = 0
        self.bad_in_row = 0
        self.split = 1
        self.best_metrics: dict[str, float] = {}
        self.best_step = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self._other_entries: dict[str, Any] = {}
        self._other_keys: dict[str, Any] = {}
        self._last_ckpt_time = time.monotonic()
        self.curve = _Curve(ctx, name)
        self.prefetcher: _Prefetcher | None = None

    # ------------------------------------------------------------ messages and checkpoints

    def say(self, message: str) -> None:
        if self.ctx is not None:
            self.ctx.log(message)
        else:
            log.info("%s", message)

    def _entry(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": repr(self.cfg),
            "finished": False,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.prefetcher.state if self.prefetcher is not None else self.sampler.state_dict(),
            "rng": rng_state(),
            "best_metrics": self.best_metrics,
            "best_step": self.best_step,
            "best_state": self.best_state,
            "skipped": self.skipped,
            "bad_in_row": self.bad_in_row,
            "split": self.split,
            "history": self.history,
        }

    def _write(self, entry: dict[str, Any]) -> None:
        if self.ctx is None:
            return
        state = dict(self._other_keys)
        state["fit"] = {**self._other_entries, self.name: entry}
        self.ctx.save_checkpoint(state)
        self._last_ckpt_time = time.monotonic()

    def save(self) -> None:
        self._write(self._entry())

    def save_finished(self, result: FitResult) -> None:
        self._write(
            {
                "format": CHECKPOINT_FORMAT,
                "config": repr(self.cfg),
                "finished": True,
                "model": self.model.state_dict(),
                "result": {
                    "best_metrics": result.best_metrics,
                    "best_step": result.best_step,
                    "steps_done": result.steps_done,
                    "skipped_steps": result.skipped_steps,
                    "history": result.history,
                    "batch_splits": result.batch_splits,
                },
            }
        )

    def restore(self) -> FitResult | None:
        """Load this run's checkpoint entry, if any; a finished entry gives its result directly."""
        if self.ctx is None:
            return None
        state = self.ctx.load_checkpoint() or {}
        entries = dict(state.pop("fit", {}) or {})
        entry = entries.pop(self.name, None)
        self._other_keys, self._other_entries = state, entries
        if entry is None:
            self.curve.keep_until(0)
            return None
        if entry.get("format") != CHECKPOINT_FORMAT or entry.get("config") != repr(self.cfg):
            self.say(f"ignoring the checkpoint of {self.name!r}: it was written with other settings")
            self.curve.keep_until(0)
            return None
        self.model.load_state_dict(entry["model"])
        if entry["finished"]:
            r = entry["result"]
            self.say(f"training run {self.name!r} had already finished; reusing its weights")
            self.curve.publish()
            return FitResult(**r)
        self.optimizer.load_state_dict(entry["optimizer"])
        if self.scaler is not None and entry["scaler"] is not None:
            self.scaler.load_state_dict(entry["scaler"])
        self.sampler.load_state_dict(entry["sampler"])
        set_rng_state(entry["rng"])
        self.step = entry["step"]
        self.best_metrics = entry["best_metrics"]
        self.best_step = entry["best_step"]
        self.best_state = entry["best_state"]
        self.skipped = entry["skipped"]
        self.bad_in_row = entry["bad_in_row"]
        self.split = entry["split"]
        self.history = entry["history"]
        self.curve.keep_until(self.step)
        self.say(f"resumed training run {self.name!r} at step {self.step} of {self.cfg.steps}")
        return None

    # ------------------------------------------------------------ evaluation

    def run_eval(self) -> None:
        if self.evaluate is None:
            return
        was_training = self.model.training
        with rng_preserved():
            self.model.eval()
            try:
                with torch.no_grad():
                    metrics = {k: float(v) for k, v in self.evaluate().items()}
            finally:
                self.model.train(was_training)
        self.history.append({"step": float(self.step), **metrics})
        self.curve.add(step=self.step, dev=metrics)
        if self.primary is None:
            better = True
        else:
            key, direction = self.primary
            if key not in metrics:
                raise StageError(
                    f"the dev evaluation gave no metric {key!r} (it gave {', '.join(metrics) or 'none'}); "
                    "the task's primary metric must be among its metrics."
                )
            value, best = metrics[key], self.best_metrics.get(key)
            better = not math.isnan(value) and (
                best is None or (value > best if direction == "higher" else value < best)
            )
        log.debug("step %d dev %s", self.step, metrics)
        if better:
            self.best_metrics, self.best_step = metrics, self.step
            self.best_state = _cpu_state(self.model) if self.primary is not None else None

    # ------------------------------------------------------------ one optimizer step

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _forward_backward(self, micro: list[list[int]], ready: list[Future] | None = None) -> list[_PartLoss]:
        """Accumulate gradients over ``micro`` (each split into ``self.split`` parts); each part's loss
        (still on the device: read with the gradient norm, in the step's one sync) and weight.
        ``ready`` holds each batch already collated (used while batches are not split)."""
        losses = []
        for k, indices in enumerate(micro):
            for part in _split(indices, self.split):
                weight = len(part) / len(indices) / len(micro)
                whole = ready is not None and len(part) == len(indices)
                batch = ready[k].result() if whole else self.collate(part)
                with self._autocast():
                    loss = self.loss_fn(batch)
                if not loss.requires_grad:
                    raise StageError("the training loss does not depend on any trainable parameter.")
                scaled = loss.float() * weight
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                losses.append(_PartLoss(loss.detach(), weight))
        return losses

    def _accumulate(self, micro: list[list[int]], ready: list[Future] | None = None) -> list[_PartLoss]:
        """Forward/backward with out-of-memory recovery: halve the batch and redo the step."""
        while True:
            try:
                return self._forward_backward(micro, ready)
            except torch.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                largest = max(len(b) for b in micro)
                if self.split >= largest:
                    raise StageError(
                        f"a single item does not fit in GPU memory at step {self.step} even alone; "
                        "lower the batch cap or crop long utterances."
                    ) from None
                self.split *= 2
                self.say(
                    f"CUDA out of memory at step {self.step}: halving the batch (each batch now goes in "
                    f"{self.split} parts whose gradients are accumulated; no data is skipped)"
                )

    def _optimizer_step(self, losses: list[_PartLoss]) -> float:
        """Clip and step. The parts' losses and the gradient norm are read in one device sync, after the
        backward passes: a non-finite loss raises :class:`_NonFinite`, a non-finite norm too (the step
        is skipped; its gradients are dropped by the caller). The step's mean loss."""
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.scaler is not None and params:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm is not None else float("inf")
        device = losses[0].value.device
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm).to(device) if params else torch.zeros((), device=device)
        *values, norm_value = torch.stack([part.value.float() for part in losses] + [norm.float()]).tolist()
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is not None:
            if self.scaler is not None and params:
                self.scaler.update()  # closes the unscale_ above; non-finite gradients lower the scale
            raise _NonFinite(f"the loss is {bad}")
        if self.scaler is not None and params:  # the scaler skips steps with inf gradients and recalibrates
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif params and not math.isfinite(norm_value):
            raise _NonFinite("the gradient norm is not finite")
        elif params:
            self.optimizer.step()
        return sum(v * part.weight for v, part in zip(values, losses, strict=True))

    def train_step(self, batches: Iterator[list[int]]) -> float | None:
        ready = None
        if self.prefetcher is not None:
            drawn = self.prefetcher.take()
            micro, ready = [indices for indices, _ in drawn], [future for _, future in drawn]
        else:
            micro = [next(batches) for _ in range(self.cfg.accumulate)]
        factor = lr_factor(self.cfg.schedule, self.step, self.cfg.steps, self.cfg.warmup_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * factor
        try:
            loss, bad = self._optimizer_step(self._accumulate(micro, ready)), None
        except _NonFinite as exc:
            loss, bad = None, exc.args[0]
        self.optimizer.zero_grad(set_to_none=True)
        if bad is None:
            self.bad_in_row = 0
            return loss
        self.skipped += 1
        self.bad_in_row += 1
        self.say(f"skipped step {self.step}: {bad} ({self.bad_in_row} in a row)")
        if self.bad_in_row >= self.cfg.max_bad_steps:
            raise StageError(
                f"{self.bad_in_row} training steps in a row had a non-finite loss or gradient (last at step "
                f"{self.step}); lower the learning rate or check the data for broken items."
            )
        return None

    # ------------------------------------------------------------ the run

    def run(self) -> FitResult:
        started = time.monotonic()
        done = self.restore()
        if done is not None:
            return done
        self.model.train()
        batches = _cycle(self.sampler)
        if self.cfg.prefetch:
            self.prefetcher = _Prefetcher(batches, self.collate, self.sampler, self.cfg.accumulate,
                                          pin=self.device.type == "cuda", depth=prefetch_depth(self.device))
        try:
            with self._cudnn():
                return self._run(batches, started)
        finally:
            if self.prefetcher is not None:
                self.prefetcher.close()
                self.prefetcher = None

    def _cudnn(self) -> contextlib.AbstractContextManager:
        """cuDNN autotuning on for this run when the config asks for it on a CUDA device."""
        if not self.cfg.cudnn_autotune:
            return contextlib.nullcontext()
        if self.device.type != "cuda":
            self.say(f"cudnn_autotune: cuDNN runs on CUDA devices only; "
                     f"this run on {self.device.type} trains without it")
            return contextlib.nullcontext()
        backends = torch.backends.cudnn
        return backends.flags(enabled=backends.enabled, benchmark=True, deterministic=backends.deterministic,
                              allow_tf32=backends.allow_tf32)

    def _run(self, batches: Iterator[list[int]], started: float) -> FitResult:
        cfg = self.cfg
        window_start, window_steps, window_loss, window_n = time.monotonic(), 0, 0.0, 0
        while self.step < cfg.steps:
            if self.thermal.check(self.say) == "stop":
                self.save()
                raise StopRequested(
                    f"{self.thermal.reason}: training stopped at step {self.step} of {cfg.steps} and saved "
                    "its checkpoint; rerun once the GPU has cooled to resume"
                )
            if self.before_step is not None:
                self.before_step(self.step)
            loss = self.train_step(batches)
            self.step += 1
            self.curve.add(step=self.step, loss=loss, lr=self.optimizer.param_groups[0]["lr"])
            window_steps += 1
            if loss is not None:
                window_loss, window_n = window_loss + loss, window_n + 1
            now = time.monotonic()
            if self.ctx is not None and (now - window_start >= 0.5 or self.step == cfg.steps):
                self.ctx.progress(
                    self.step,
                    cfg.steps,
                    loss=window_loss / window_n if window_n else float("nan"),
                    steps_per_s=window_steps / max(now - window_start, 1e-9),
                    lr=self.optimizer.param_groups[0]["lr"],
                )
                window_start, window_steps, window_loss, window_n = now, 0, 0.0, 0
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                self.run_eval()
            due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
            minutes = cfg.checkpoint_minutes
            late = minutes is not None and now - self._last_ckpt_time >= 60 * minutes
            if self.ctx is not None and self.step < cfg.steps and (due or late):
                self.save()
        self.run_eval()
        if self.best_state is not None and self.best_step != self.step:
            self.model.load_state_dict(self.best_state)
            self.say(f"kept the weights of step {self.best_step}, the best on dev ({self.best_metrics})")
        result = FitResult(
            best_metrics=self.best_metrics,
            best_step=self.best_step if self.evaluate is not None else self.step,
            steps_done=self.step,
            skipped_steps=self.skipped,
            history=self.history,
            batch_splits=self.split,
            seconds=time.monotonic() - started,
        )
        self.best_state = None
        self.save_finished(result)
        self.curve.publish()
        return result


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    sampler: Any,
    collate: Callable[[list[int]], Any],
    cfg: TrainConfig,
    ctx: StageContext | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
    primary: tuple[str, str] | None = None,
    before_step: Callable[[int], None] | None = None,
    *,
    thermal: ThermalGuard | None = None,
    name: str = "train",
) -> FitResult:
    """Train ``model`` for ``cfg.steps`` optimizer steps; see the module docstring.

    ``loss_fn(collate(indices))`` gives a scalar loss averaged over the batch's items (``loss_fn``
    moves the batch to the model's device; :func:`move_to` helps). ``evaluate`` returns dev metrics
    (called every ``cfg.eval_every`` steps and at the end, in eval mode without gradients);
    ``primary`` = (metric, "higher"|"lower") selects the best-on-dev weights, which the model holds
    on return (the final weights when ``evaluate`` or ``primary`` is None). ``before_step(step)``
    runs before each optimizer step's first forward; a parameter with ``requires_grad=False`` at a
    step gets no update that step (no gradient, no weight decay, no moment update). ``thermal``
    overrides the default guard (NVML on CUDA, else off). ``name`` keys this run in the stage
    checkpoint; a stage that trains several times (even under one name) gets one entry per call,
    in call order, so a rerun after a kill reuses the finished runs and resumes the interrupted one.
    """
    _check_config(cfg)
    if ctx is not None:  # the k-th run of this name in the stage: reruns call fit in the same order
        calls = ctx.__dict__.setdefault("_fit_calls", {})
        calls[name] = calls.get(name, -1) + 1
        name = f"{name}#{calls[name]}" if calls[name] else name
    trainer = _Trainer(
        model, loss_fn, sampler, collate, cfg, ctx, evaluate, primary, before_step, thermal, name
    )
    return trainer.run()
