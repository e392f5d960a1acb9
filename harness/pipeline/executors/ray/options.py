"""What the Ray executor asks of Ray for a stage: the resources it declares, and the ``--device`` value."""

from __future__ import annotations

import re
from typing import Any

from harness.core.errors import HarnessError
from harness.core.plan import Stage
from harness.models.model_io import parse_device

RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
DEFAULT_RESOURCES: dict[str, float] = {"num_cpus": 1.0, "num_gpus": 0.0}


# A few lines instead of a dependency: Ray takes memory in bytes, recipes read better with units.
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory(value: Any, where: str) -> int:
    """Bytes from a number of bytes or a string such as ``"16GB"``, ``"512 MiB"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None:
        raise HarnessError(f"{where} is {value!r}, not an amount of memory; write bytes or a size such as "
                           "16GB or 512MiB.")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def task_options(stage: Stage) -> dict[str, Any]:
    """Ray resource options of a stage: what the recipe declares for its kind over 1 CPU and no GPU."""
    where = f"resources.{stage.kind}"
    unknown = sorted(set(stage.resources) - set(RESOURCE_KEYS))
    if unknown:
        raise HarnessError(f"{where}.{unknown[0]} is not a resource the ray executor schedules by; "
                           f"use {', '.join(RESOURCE_KEYS)}.")
    options: dict[str, Any] = dict(DEFAULT_RESOURCES)
    for key, unit in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if key not in stage.resources:
            continue
        value = stage.resources[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise HarnessError(f"{where}.{key} is {value!r}; give a number of {unit}s (0 or more).")
        if value > 1 and value != int(value):
            raise HarnessError(f"{where}.{key} is {value}; above 1 it must be a whole number (Ray shares only "
                               "a single device between tasks).")
        options[key] = float(value)
    if "memory" in stage.resources:
        options["memory"] = parse_memory(stage.resources["memory"], f"{where}.memory")
    return options


def fits(options: dict[str, Any], node_resources: dict[str, float]) -> bool:
    """Whether one node has the resources a task asks for."""
    return (node_resources.get("CPU", 0.0) >= options["num_cpus"]
            and node_resources.get("GPU", 0.0) >= options["num_gpus"]
            and node_resources.get("memory", 0.0) >= options.get("memory", 0))


def describe(options: dict[str, Any]) -> str:
    parts = [f"{options['num_cpus']:g} CPU", f"{options['num_gpus']:g} GPU"]
    if "memory" in options:
        parts.append(f"{options['memory'] / 2**30:.1f} GiB memory")
    return ", ".join(parts)


def ray_device(request: str) -> str:
    """A ``--device`` value for stages Ray runs, checked on the driver; each task resolves it on its node.

    A GPU number is refused: Ray gives each stage that declares a GPU its own, seen there as the only one.
    """
    text = parse_device(request)
    if text.startswith("cuda:"):
        raise HarnessError(f"--device {text} names one GPU, but with --executor ray Ray gives each stage its GPU; "
                           "use --device auto, cuda or cpu.")
    return text
