"""GPU thermal guard: between optimizer steps, read the GPU temperature and act on two limits.

- at or above the *soft* limit the loop pauses (sleeping) until the GPU has cooled to
  ``resume_c`` (soft limit − 5 °C by default), and says so in the stage log;
- at or above the *hard* limit, or when a pause outlasts ``max_pause_s``, the loop writes its
  checkpoint and stops the stage with :class:`harness.core.errors.StopRequested`; a rerun resumes.

The sensor is NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``) when it is importable
and the model is on a CUDA device; otherwise the guard is off, with one info line. Tests pass a
fake sensor (any callable returning degrees Celsius) and a fake clock and sleep.

The limits default to 83 °C / 90 °C and can be set with the environment variables
``HARNESS_GPU_SOFT_C`` and ``HARNESS_GPU_HARD_C``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Literal

import torch

log = logging.getLogger("harness.training.thermal")

DEFAULT_SOFT_C = 83.0
DEFAULT_HARD_C = 90.0

Verdict = Literal["ok", "stop"]
_announced_off = False


class ThermalGuard:
    """Polls ``sensor`` at most every ``poll_s`` seconds; see the module docstring for the policy."""

    def __init__(
        self,
        sensor: Callable[[], float | None] | None,
        soft_c: float = DEFAULT_SOFT_C,
        hard_c: float = DEFAULT_HARD_C,
        resume_c: float | None = None,
        poll_s: float = 5.0,
        cool_poll_s: float = 5.0,
        max_pause_s: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        name: str = "GPU",
    ):
        if sensor is not None and not soft_c < hard_c:
            raise ValueError(f"the soft temperature limit ({soft_c}) must be below the hard one ({hard_c})")
        self.sensor = sensor
        self.soft_c = soft_c
        self.hard_c = hard_c
        self.resume_c = soft_c - 5.0 if resume_c is None else resume_c
        self.poll_s = poll_s
        self.cool_poll_s = cool_poll_s
        self.max_pause_s = max_pause_s
        self.sleep = sleep
        self.clock = clock
        self.name = name
        self.reason = ""
        self.paused_s = 0.0
        self._last_poll: float | None = None

    @property
    def enabled(self) -> bool:
        return self.sensor is not None

    def check(self, say: Callable[[str], None]) -> Verdict:
        """Called between steps: returns "ok" (possibly after a pause) or "stop" (``reason`` says why)."""
        if self.sensor is None:
            return "ok"
        now = self.clock()
        if self._last_poll is not None and now - self._last_poll < self.poll_s:
            return "ok"
        self._last_poll = now
        temp = self.sensor()
        if temp is None or temp < self.soft_c:
            return "ok"
        if temp >= self.hard_c:
            self.reason = f"{self.name} temperature {temp:.0f} °C reached the hard limit {self.hard_c:.0f} °C"
            return "stop"
        say(
            f"{self.name} temperature {temp:.0f} °C is above the soft limit {self.soft_c:.0f} °C; "
            f"pausing until it cools to {self.resume_c:.0f} °C"
        )
        start = self.clock()
        while True:
            self.sleep(self.cool_poll_s)
            temp = self.sensor()
            waited = self.clock() - start
            if temp is not None and temp >= self.hard_c:
                self.paused_s += waited
                self.reason = (
                    f"{self.name} temperature {temp:.0f} °C reached the hard limit {self.hard_c:.0f} °C"
                )
                return "stop"
            if temp is None or temp <= self.resume_c:
                self.paused_s += waited
                now_c = "an unreadable temperature" if temp is None else f"{temp:.0f} °C"
                say(f"{self.name} cooled to {now_c}; resumed after {waited:.0f} s")
                self._last_poll = self.clock()
                return "ok"
            if waited >= self.max_pause_s:
                self.paused_s += waited
                self.reason = (
                    f"{self.name} stayed at {temp:.0f} °C, above {self.resume_c:.0f} °C, for {waited:.0f} s"
                )
                return "stop"


def nvml_sensor(device: torch.device) -> tuple[Callable[[], float | None], str] | None:
    """A temperature reader for the NVML device behind ``device``, or None when NVML is unavailable."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        handle = None
        props = torch.cuda.get_device_properties(index)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:  # CUDA and NVML number devices differently under CUDA_VISIBLE_DEVICES
            domain = getattr(props, "pci_domain_id", 0)
            dev = getattr(props, "pci_device_id", 0)
            try:
                handle = pynvml.nvmlDeviceGetHandleByPciBusId(f"{domain:08x}:{bus:02x}:{dev:02x}.0")
            except pynvml.NVMLError:
                handle = None
        if handle is None:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # NVML present but unusable (no driver, container without access)
        log.info("thermal guard off: NVML is installed but unusable (%s).", exc)
        return None

    def read() -> float | None:
        try:
            return float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
        except pynvml.NVMLError:
            return None

    return read, f"{name} (GPU {index})"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        log.warning("ignoring %s=%r: not a number; using %s", name, value, default)
        return default


def default_guard(device: torch.device) -> ThermalGuard:
    """The guard the training loop uses when none is given: NVML on CUDA, else off (one info line)."""
    global _announced_off
    found = nvml_sensor(device) if device.type == "cuda" else None
    if found is None:
        if not _announced_off:  # one line per process, not one per training run
            why = (
                "the model is not on a CUDA device"
                if device.type != "cuda"
                else "nvidia-ml-py is not available"
            )
            log.info("thermal guard off: %s.", why)
            _announced_off = True
        return ThermalGuard(None)
    sensor, name = found
    soft = _env_float("HARNESS_GPU_SOFT_C", DEFAULT_SOFT_C)
    hard = _env_float("HARNESS_GPU_HARD_C", DEFAULT_HARD_C)
    if not soft < hard:
        log.warning(
            "thermal limits soft=%s >= hard=%s; using %s/%s", soft, hard, DEFAULT_SOFT_C, DEFAULT_HARD_C
        )
        soft, hard = DEFAULT_SOFT_C, DEFAULT_HARD_C
    log.info("thermal guard on for %s: pause at %.0f °C, stop at %.0f °C.", name, soft, hard)
    return ThermalGuard(sensor, soft_c=soft, hard_c=hard, name=name)
