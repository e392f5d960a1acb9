"""Upstream speed: forward+backward and extraction of a HuBERT preset, TFLOP/s and MFU per path.

Paths: fp32; bf16 autocast; the FFT positional convolution (``pos_conv=fft``); the layers on the valid
frames only (``attention=packed``); cuDNN autotuning, alone and with the batches padded to the stages'
half-second buckets, and fp32 on TF32 tensor cores (CUDA); the CNN as time-major matrix products
(``+cnn_gemm``, :mod:`harness.models.feature_conv`); torch.compile of the ``auto`` settings' layers
(CUDA by default; the whole model when ``--paths`` names it; ``+graphs``: replayed as CUDA graphs over
half-second buckets, CUDA only, timed on the third pass). FLOPs are counted once per batch on the
packed layers with the plain convolution (:mod:`flop_count`: torch's counter, grouped convolutions'
weight gradient corrected, on a shape-only copy of the model): the useful work, padding excluded, so
that every path is rated against the same work and the padded paths' wasted products count against
them (the header prints how much more the padded path computes). MFU divides by the device's peak
dense TFLOP/s of the precision (:data:`PEAK_TFLOPS`); unknown devices and CPUs: "n/a". The fine-tuning
rate is the training loop (:func:`harness.training.loop.fit`, batches collated from waveforms,
prefetched as in the stage) in audio seconds per second, against the raw model rate; ``--paths
stage-parts`` builds a step up a piece a row to show where the loop gains or loses. ``--profile PATH``
instead profiles one pass of a path and prints where its time goes by kind of work, with the FLOPs each
kind does (:mod:`profile_breakdown`).

    .venv/bin/python benchmarks/bench_upstream_speed.py --preset tiny --seconds 8 --steps 3
    .venv/bin/python benchmarks/bench_upstream_speed.py --preset tiny --profile bf16 --trace /tmp/bf16.json
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flop_count import count_flops, flops_by_category, shape_only_copy
from profile_breakdown import profile_pass

from harness.data.batching import DynamicBatchSampler
from harness.data.waveforms import AUTOTUNE_BUCKET_SECONDS, pad_waves
from harness.models.upstream_speed import compile_module, compile_regions
from harness.training.loop import TrainConfig, fit
from plugins.upstreams.hubert import HubertParams, HubertPlugin

#: peak dense TFLOP/s by (device-name fragment, precision); fp32 is the non-tensor-core rate
PEAK_TFLOPS = {(gpu, precision): value for gpu in ("H100", "H200")
               for precision, value in (("bf16", 989.0), ("tf32", 494.0), ("fp32", 67.0))}
#: the name of the fine-tuning stage loop's row for ``--paths``
STAGE_LOOP = "stage-loop"
#: the rows that take a training step apart, one piece more per row, for ``--paths``
STAGE_PARTS = "stage-parts"
#: the suffix of the paths whose CNN runs as matrix products (``set_feature_conv("gemm")``)
CNN_GEMM = "+cnn_gemm"
#: cuDNN autotuning with batches padded to whole buckets, as ``cudnn_autotune: true`` trains
BUCKETED = "bf16+cudnn_benchmark+buckets"
#: the whole model compiled (not what ``compile: true`` does), timed only when ``--paths`` names it
WHOLE_COMPILE = "bf16+auto+compile-whole"
#: ``compile: graphs``: the compiled layers replayed as CUDA graphs over the stages' half-second buckets
GRAPHS = "bf16+auto+compile+graphs"


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for (frag, p), v in PEAK_TFLOPS.items() if frag in name and p == precision), None)


def _batches(seconds_per_batch: float, steps: int, seed: int = 0, random: bool = False) -> list[list[np.ndarray]]:
    """``steps`` batches of ≤ ``seconds_per_batch`` padded seconds, items of 2–6 s: the project's
    length-sorted dynamic batches, or with ``random`` items in random order (much more padding)."""
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(2.0, 6.0, size=max(4 * steps, int(steps * seconds_per_batch / 2) + 4))
    waves = [rng.standard_normal(int(s * 16000)).astype(np.float32) * 0.1 for s in lengths]
    if not random:
        sampler = DynamicBatchSampler(lengths, seconds_per_batch, seed=seed)
        return [[waves[i] for i in b] for b in list(sampler)[:steps]]
    batches: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    for i in rng.permutation(len(waves)).tolist():
        longest = max([len(waves[i])] + [len(w) for w in current])
        if current and (len(current) + 1) * longest > seconds_per_batch * 16000:
            batches.append(current)
            current = []
        current.append(waves[i])
    return (batches + [current])[:steps]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _compiled(model: torch.nn.Module, whole: bool, graphs: bool = False) -> Iterator[None]:
    """The model as ``compile: true`` (or ``graphs``) runs it (:func:`compile_module`), or compiled whole (the
    comparison), back to eager afterwards."""
    regions = [model] if whole else compile_regions(model)
    if whole:
        model.compile(dynamic=True)
    else:
        compile_module(model, graphs=graphs)
    try:
        yield
    finally:
        for region in regions:
            region._compiled_call_impl = None  # the rows after this one run eager again


@contextlib.contextmanager
def _matmul_precision(precision: str) -> Iterator[None]:
    """fp32 matmuls on TF32 tensor cores for ``tf32`` paths (CUDA), full fp32 otherwise."""
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


def _loss(model, wavs, lengths) -> torch.Tensor:
    return model(wavs, lengths).hidden_states[-1].float().square().mean()


def _one_pass(model, batches, device, train: bool, bf16: bool, multiple: int = 1,
              graphs: bool = False) -> Callable[[], None]:
    """A pass over ``batches`` (forward+backward or extraction), waveforms already on ``device`` and
    padded to a ``multiple`` of samples. Each backward writes fresh gradients, as in a training step
    (accumulating them into the last batch's costs a kernel per parameter that no stage runs); with
    ``graphs`` each batch starts a new CUDA-graph step, as the stage's steps do."""
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    # the lengths stay on the host, as in the stages
    padded = [(wavs.to(device), lengths) for wavs, lengths in (pad_waves(b, multiple) for b in batches)]

    def run() -> None:
        for wavs, lengths in padded:
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with cast:
                if train:
                    _loss(model, wavs, lengths).backward()
                    model.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        model(wavs, lengths)

    return run


def _run(model, batches, device, train: bool, bf16: bool, multiple: int = 1,
         graphs: bool = False) -> tuple[float, float]:
    """Seconds of a first pass over ``batches`` (every shape seen once: compilation, autotuning) and of
    the pass after it (with ``graphs``: of the third, the second recording each shape's CUDA graph)."""
    run = _one_pass(model, batches, device, train, bf16, multiple, graphs)
    times = []
    for _ in range(3 if graphs else 2):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times[0], times[-1]


def _flops(model, batches, train: bool, attention: str) -> float:
    """The useful work of a pass over ``batches`` with the plain convolution and ``attention``, counted
    on a shape-only copy of ``model`` (:mod:`flop_count`)."""
    meta = shape_only_copy(model).train(train)
    meta.set_positional_conv("conv")
    meta.set_attention(attention)
    total = 0
    for b in batches:
        wavs, lengths = pad_waves(b)
        wavs = wavs.to("meta")
        if train:
            total += count_flops(lambda: _loss(meta, wavs, lengths).backward())  # noqa: B023 - called at once
        else:
            with torch.no_grad():
                total += count_flops(lambda: meta(wavs, lengths))  # noqa: B023 - called at once
    return float(total)


def _finetune_rate(model, batches, device, bf16: bool, prefetch: bool = True) -> float:
    """Audio seconds per second of the training loop on these batches (collate, ``prefetch`` as in the
    stage, AdamW), in steady state."""
    waves = [w for b in batches for w in b]
    sizes = [len(b) for b in batches]
    groups = np.split(np.arange(len(waves)), np.cumsum(sizes)[:-1])

    class Fixed:
        def __init__(self):
            self.epoch, self.position = 0, 0

        def __len__(self):
            return len(groups)

        def __iter__(self):
            while self.position < len(groups):
                self.position += 1
                yield groups[self.position - 1].tolist()
            self.epoch, self.position = self.epoch + 1, 0

        def state_dict(self):
            return {"epoch": self.epoch, "position": self.position}

        def load_state_dict(self, state):
            self.epoch, self.position = state["epoch"], state["position"]

    def collate(indices):
        return pad_waves([waves[i] for i in indices])

    def loss_fn(batch):
        wavs, lengths = batch
        return _loss(model, wavs.to(device, non_blocking=True), lengths)

    def seconds(epochs: int) -> float:
        cfg = TrainConfig(steps=epochs * len(groups), lr=1e-5, amp=bf16, prefetch=prefetch, checkpoint_minutes=None)
        _sync(device)
        start = time.perf_counter()
        fit(model, loss_fn, Fixed(), collate, cfg)
        _sync(device)
        return time.perf_counter() - start

    model.feature_extractor.requires_grad_(False)
    fit(model, loss_fn, Fixed(), collate, TrainConfig(steps=1, lr=1e-5, amp=bf16, checkpoint_minutes=None))
    # n + 1 passes over the batches less n: the steady rate, without fit's set-up (optimizer, threads),
    # which a stage of thousands of steps pays once; the least of two such differences, since a single
    # one is at the mercy of one slow pass
    times = [seconds(n) for n in (1, 2, 3)]
    extra = min(times[1] - times[0], times[2] - times[1])
    return sum(len(w) for w in waves) / 16000 / extra if extra > 0 else float("nan")  # nan: lost in the noise


def _step_parts(model, batches, device, bf16: bool) -> Iterator[dict[str, Any]]:
    """A training step built up a piece a row (forward+backward with fresh gradients; + clipping and
    AdamW as the loop makes them; + the loop's one read of the loss and norm; + the waveforms moved from
    pinned memory each step), each row's second pass timed, with the host's time to queue it; then the
    loop itself (:func:`_finetune_rate`) with and without its reading threads."""
    audio = sum(len(w) for b in batches for w in b) / 16000
    padded = [pad_waves(b) for b in batches]
    on_device = [(w.to(device), n) for w, n in padded]
    pinned = [w.pin_memory() if device.type == "cuda" else w for w, _ in padded]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda" or None)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def one_pass(step: bool, sync: bool, moved: bool) -> tuple[float, float]:
        host = 0.0
        _sync(device)
        start = time.perf_counter()
        for (wavs, lengths), host_wavs in zip(on_device, pinned, strict=True):
            queued = time.perf_counter()
            if moved:
                wavs = host_wavs.to(device, non_blocking=True)
            with cast:
                loss = _loss(model, wavs, lengths)
            loss.backward()
            if step:
                norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
                if sync:
                    torch.stack([loss.detach(), norm]).tolist()
                optimizer.step()
            model.zero_grad(set_to_none=True)
            host += time.perf_counter() - queued
        _sync(device)
        return time.perf_counter() - start, host

    for name, flags in (("forward+backward", (False, False, False)), ("+ clip and AdamW", (True, False, False)),
                        ("+ one read a step", (True, True, False)), ("+ waveforms moved", (True, True, True))):
        one_pass(*flags)
        seconds, host = one_pass(*flags)
        yield {"work": STAGE_PARTS, "path": name, "audio_s_per_s": audio / seconds,
               "ms_per_step": 1000 * seconds / len(batches), "host_ms_per_step": 1000 * host / len(batches)}
    for prefetch in (True, False):
        yield {"work": STAGE_PARTS, "path": f"fit, prefetch={prefetch}",
               "audio_s_per_s": _finetune_rate(model, batches, device, bf16, prefetch)}


def _model(device: torch.device, preset: str) -> torch.nn.Module:
    model = HubertPlugin().build(HubertParams(preset=preset), seed=0).to(device)
    model.feature_extractor.requires_grad_(False)  # as in stable fine-tuning: the CNN stays frozen
    model.set_layerdrop(0.0)  # every pass does the same work: no layer skipped at random
    return model


#: one timed path: (name, bf16 autocast, positional convolution, attention, cuDNN autotuning)
Path_ = tuple[str, bool, str, str, bool]


def _paths(device: torch.device, compile: bool, only: Collection[str] | None) -> list[Path_]:
    """The paths this device can time (``compile``: with the compiled one), or the ``only`` ones among them
    and :data:`WHOLE_COMPILE`; an unknown name raises one sentence listing the known ones."""
    paths = [("fp32", False, "conv", "padded", False), ("bf16", True, "conv", "padded", False),
             ("fp32+fft", False, "fft", "padded", False), ("bf16+fft", True, "fft", "padded", False),
             ("fp32+packed", False, "conv", "packed", False), ("bf16+packed", True, "conv", "packed", False),
             ("bf16+fft+packed", True, "fft", "packed", False),
             ("fp32+fft" + CNN_GEMM, False, "fft", "padded", False),
             ("bf16+fft" + CNN_GEMM, True, "fft", "padded", False)]
    if device.type == "cuda":
        paths += [("bf16+cudnn_benchmark", True, "conv", "padded", True),
                  (BUCKETED, True, "conv", "padded", True),
                  ("tf32+fft", False, "fft", "padded", False)]
    if compile:
        paths += [("bf16+auto+compile", True, "auto", "auto", False)]
        if device.type == "cuda":
            paths += [(GRAPHS, True, "auto", "auto", False)]
    if only is not None and WHOLE_COMPILE in only:  # minutes to compile at Base size: only when named
        paths += [(WHOLE_COMPILE, True, "auto", "auto", False)]
    if only is None:
        return paths
    names = [p[0] for p in paths] + [STAGE_LOOP, STAGE_PARTS]
    unknown = set(only) - set(names)
    if unknown:
        raise ValueError(f"unknown paths {sorted(unknown)}; choose from {names}")
    return [p for p in paths if p[0] in only]


@contextlib.contextmanager
def _path_settings(model: torch.nn.Module, path: Path_) -> Iterator[None]:
    """``model`` set up for ``path``: its positional convolution, attention, matmul precision, cuDNN
    autotuning, compilation (undone afterwards)."""
    name, bf16, pos, attention, autotune = path
    model.set_positional_conv(pos)
    model.set_attention(attention)
    model.set_feature_conv("gemm" if name.endswith(CNN_GEMM) else "conv")
    compiled = (_compiled(model, whole=name == WHOLE_COMPILE, graphs=name == GRAPHS) if "compile" in name
                else contextlib.nullcontext())
    cudnn = torch.backends.cudnn.flags(enabled=True, benchmark=autotune,
                                       deterministic=torch.backends.cudnn.deterministic,
                                       allow_tf32=torch.backends.cudnn.allow_tf32)
    try:
        with cudnn, _matmul_precision(_precision(path)), compiled:
            yield
    finally:
        model.set_feature_conv("conv")  # the FLOP count of the next work counts the convolutions


def _multiple(path: Path_) -> int:
    """Samples the path pads each batch's length to a multiple of (the stages' autotuning buckets)."""
    return int(AUTOTUNE_BUCKET_SECONDS * 16000) if path[0] in (BUCKETED, GRAPHS) else 1


def _precision(path: Path_) -> str:
    return "bf16" if path[1] else "tf32" if path[0].startswith("tf32") else "fp32"


def measure(device: str | torch.device, preset: str, seconds_per_batch: float, steps: int,
            *, compile: bool | None = None, random_batches: bool = False,
            only: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
    """One row per (work, path), yielded as each is measured: seconds, audio s/s, TFLOP/s, MFU, ratio to
    the first path timed; then the fine-tuning stage's rate against the raw model rate. ``compile``
    (default: on CUDA only) adds compiled rows; ``only`` keeps the named paths (the stage row is named
    :data:`STAGE_LOOP`)."""
    device = torch.device(device)
    compile = device.type == "cuda" if compile is None else compile
    model = _model(device, preset)
    batches = _batches(seconds_per_batch, steps, random=random_batches)
    audio = sum(len(w) for b in batches for w in b) / 16000
    paths = _paths(device, compile, only)
    for work, train in (("forward+backward", True), ("extraction", False)) if paths else ():
        model.train(train)
        padded_flops = _flops(model, batches, train, "padded")
        try:
            flops = _flops(model, batches, train, "packed")
        except Exception as exc:  # the counter lacks a formula for this torch's variable-length kernel
            print(f"{work}: counting the packed path failed ({type(exc).__name__}: {str(exc)[:120]}); "
                  "every path is rated against the padded path's work")
            flops = padded_flops
        print(f"{work}: {flops / 1e12:.4g} TFLOP of useful work over {len(batches)} batches; "
              f"the padded path computes {padded_flops / flops:.3f}× that")
        base = None
        for path in paths:
            name, bf16 = path[:2]
            try:
                with _path_settings(model, path):
                    first, seconds = _run(model, batches, device, train, bf16, _multiple(path), name == GRAPHS)
            except Exception as exc:  # a path this torch cannot run is reported, not fatal to the rest
                yield {"work": work, "path": name, "failed": f"{type(exc).__name__}: {str(exc)[:160]}"}
                continue
            finally:
                model.zero_grad(set_to_none=True)
            tflops = flops / seconds / 1e12
            peak = peak_tflops(device, _precision(path))
            base = base or seconds
            yield {"work": work, "path": name, "seconds": seconds, "audio_s_per_s": audio / seconds,
                   "tflops": tflops, "mfu": tflops / peak if peak else "n/a", "speedup": base / seconds,
                   "first_pass_s": first}
    if only is not None and STAGE_LOOP not in only and STAGE_PARTS not in only:
        return
    model.set_positional_conv("auto")
    model.set_attention("auto")
    bf16 = device.type == "cuda"
    model.train()
    if only is not None and STAGE_PARTS in only:
        yield from _step_parts(model, batches, device, bf16)
        if STAGE_LOOP not in only:
            return
    raw = audio / _run(model, batches, device, True, bf16)[1]  # measured now, under the stage's settings
    model.zero_grad(set_to_none=True)
    stage = _finetune_rate(model, batches, device, bf16)
    yield {"work": "fine-tuning stage loop", "path": "bf16+auto" if bf16 else "fp32+auto",
           "audio_s_per_s": stage, "raw_audio_s_per_s": raw, "ratio_to_raw": stage / raw}


def profile(device: str | torch.device, preset: str, seconds_per_batch: float, steps: int, path_name: str,
            *, train: bool = True, trace: Path | None = None) -> str:
    """Where the time of one pass of ``path_name`` goes (:mod:`profile_breakdown`), after a pass that
    warms it up (compilation, autotuning), with the FLOPs each kind of work does and their rate."""
    device = torch.device(device)
    model = _model(device, preset).train(train)
    batches = _batches(seconds_per_batch, steps)
    (path,) = _paths(device, "compile" in path_name, [path_name])
    with _path_settings(model, path):
        run = _one_pass(model, batches, device, train, path[1], _multiple(path), path[0] == GRAPHS)
        for _ in range(2 if path[0] == GRAPHS else 1):  # compiled, autotuned, recorded
            run()
        breakdown = profile_pass(run, device, trace)
    # the FLOPs this path does, by kind: the same pass again, eager, on the same device, so that each
    # operator lands in the category of the kernel that ran it (a shape-only copy would decompose attention)
    breakdown.flops = flops_by_category(_one_pass(model, batches, device, train, path[1], _multiple(path)))
    model.zero_grad(set_to_none=True)
    work = "forward+backward" if train else "extraction"
    return f"profile of {work}, path {path_name}, {len(batches)} batches:\n{breakdown.format(per=len(batches))}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    parser.add_argument("--seconds", type=float, default=8.0, help="padded seconds of audio per batch")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--random-batches", action="store_true",
                        help="items in random order instead of length-sorted batches (more padding)")
    parser.add_argument("--paths", nargs="+", default=None,
                        help=f"only these paths (e.g. bf16 bf16+auto+compile {STAGE_LOOP})")
    parser.add_argument("--profile", metavar="PATH", default=None,
                        help="instead of timing: where one pass of this path's time goes, by kind of work")
    parser.add_argument("--profile-work", choices=["train", "extract"], default="train")
    parser.add_argument("--trace", type=Path, default=None, help="--profile: also write a Chrome trace here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; HuBERT {args.preset}; {args.seconds:g} s batches × {args.steps}")
    if args.profile:
        print(profile(device, args.preset, args.seconds, args.steps, args.profile,
                      train=args.profile_work == "train", trace=args.trace))
        return
    for row in measure(device, args.preset, args.seconds, args.steps, compile=args.compile,
                       random_batches=args.random_batches, only=args.paths):
        print("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
