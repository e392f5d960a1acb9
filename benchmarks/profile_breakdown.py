"""Where a step's time goes: one ``torch.profiler`` pass summed by kind of work.

:func:`profile_pass` profiles a callable and returns a :class:`Breakdown`: the device's busy time
(CUDA kernels, copies and fills on a GPU; the ATen operators' own time on the CPU) by category (matrix
products, attention, convolutions, FFT, normalisation, copies and casts, optimizer, other element-wise
work), the busiest kernels, how much of the wall time the device sat idle, kernel launches, and the
host waits for the device (stream and device synchronisations, blocking copies). Given the FLOPs of
each category (:func:`flop_count.flops_by_category` of the same pass), its table also shows the rate
each kind of work reaches, which tells a slow kernel from a heavy one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

#: (category, name fragments), first match wins: cuDNN's convolution kernels are GEMMs by name
#: (``xmma_fprop_implicit_gemm``) and flash attention's are cutlass ones, so those come before matmul
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash", "fmha", "attention", "softmax")),
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "implicit_convolve", "winograd")),
    ("fft", ("fft",)),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("normalization", ("norm", "gammabeta", "moments", "welford")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("copy/cast", ("copy", "cast", "memcpy", "memset", "aten::to", "aten::cat", "index", "gather", "scatter")),
)
#: host-side calls that wait for the device
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def category(name: str) -> str:
    """The kind of work a kernel or operator named ``name`` does (``elementwise`` when none matches)."""
    low = name.lower()
    return next((cat for cat, frags in CATEGORIES if any(f in low for f in frags)), "elementwise")


@dataclass
class Breakdown:
    """One profiled pass (times in seconds)."""

    wall: float
    busy: float
    by_category: dict[str, float]
    top: list[tuple[str, float, int]] = field(default_factory=list)  # (name, seconds, calls)
    launches: int = 0
    syncs: int = 0
    cuda: bool = False
    #: FLOPs the pass does, by the same categories (:func:`flop_count.flops_by_category`), when counted
    flops: dict[str, float] = field(default_factory=dict)

    @property
    def idle_share(self) -> float:
        """The share of the wall time in which the device ran nothing (0 where ``busy`` ≥ ``wall``)."""
        return max(0.0, 1.0 - self.busy / self.wall) if self.wall > 0 else 0.0

    def format(self, per: int = 1, top: int = 15) -> str:
        """A table of categories (with the FLOPs done and their rate, where counted) and of the ``top``
        busiest kernels; counts divided by ``per`` (steps)."""
        if self.cuda:
            counts = f"{self.launches / per:.0f} kernels, {self.syncs / per:.1f} host waits for the device"
        else:
            counts = f"{self.launches / per:.0f} operators"
        lines = [f"wall {self.wall:.4g} s, device busy {self.busy:.4g} s, idle {100 * self.idle_share:.1f} %; "
                 f"per step: {counts}"]
        lines.append(f"  {'category':<14}{'seconds':>10}{'share':>8}{'TFLOP':>10}{'TFLOP/s':>10}")
        for cat, sec in sorted(self.by_category.items(), key=lambda kv: -kv[1]):
            share = 100 * sec / self.busy if self.busy else 0.0
            flops = self.flops.get(cat, 0.0)
            rate = f"{flops / sec / 1e12:>10.4g}" if flops else f"{'':>10}"
            done = f"{flops / 1e12:>10.4g}" if flops else f"{'':>10}"
            lines.append(f"  {cat:<14}{sec:>10.4g}{share:>7.1f}%{done}{rate}")
        lines.append(f"  {'kernel or operator':<72}{'seconds':>10}{'calls':>8}")
        for name, sec, calls in self.top[:top]:
            short = name if len(name) <= 70 else name[:67] + "..."
            lines.append(f"  {short:<72}{sec:>10.4g}{calls:>8}")
        return "\n".join(lines)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_pass(run: Callable[[], None], device: torch.device, trace: Path | None = None) -> Breakdown:
    """Profile ``run()`` on ``device`` (CUDA: kernels; otherwise: CPU operators' self time); ``trace``
    also writes a Chrome trace (``chrome://tracing``, Perfetto)."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        run()
        _sync(device)
        wall = time.perf_counter() - start
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    by_category: dict[str, float] = defaultdict(float)
    rows: list[tuple[str, float, int]] = []
    launches = syncs = 0
    for event in prof.key_averages():
        if event.key.startswith(SYNC_CALLS) and not event.key.startswith("cudaMemcpyAsync"):
            syncs += event.count
        if cuda:
            if event.device_type != DeviceType.CUDA:
                continue
            seconds = event.self_device_time_total / 1e6
            launches += event.count
        else:
            if event.device_type != DeviceType.CPU or not event.key.startswith("aten::"):
                continue  # markers, autograd's and the runtime's own events: not operators
            seconds = event.self_cpu_time_total / 1e6
        if seconds <= 0:
            continue
        by_category[category(event.key)] += seconds
        rows.append((event.key, seconds, event.count))
    rows.sort(key=lambda r: -r[1])
    if not cuda:  # CPU operators: each call is one "launch"
        launches = sum(calls for _, _, calls in rows)
    return Breakdown(wall, sum(by_category.values()), dict(by_category), rows, launches, syncs, cuda)
