"""What a running stage sees: its folders, seed, plugins, mid-stage checkpoints and progress."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.plugin import PluginSource

if TYPE_CHECKING:
    import torch

log = logging.getLogger("harness.core.stage")

CHECKPOINT_FILE = "checkpoint.pt"


def _cpu() -> torch.device:
    """The default device; torch is imported here so that importing this module does not load it."""
    import torch

    return torch.device("cpu")


@dataclass
class StageContext:
    """Handed to every stage function.

    ``out_dir`` is a temporary folder renamed into place when the stage succeeds. ``work_dir`` is
    kept across killed runs (mid-stage checkpoints live there) and removed after success.
    ``cache_root`` is shared by all stages of the output folder (e.g. hidden states of one model on
    one corpus, reused by every downstream). ``input_keys`` maps input roles to stage keys.
    """

    key: str
    out_dir: Path
    work_dir: Path
    cache_root: Path
    seed: int
    plugins: PluginSource
    input_keys: dict[str, str] = field(default_factory=dict)
    device: torch.device = field(default_factory=_cpu)
    on_progress: Callable[[int, int, dict[str, Any]], None] | None = None
    on_cache_filled: Callable[[], None] | None = None
    messages: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / CHECKPOINT_FILE

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically write a mid-stage checkpoint (tensors, numbers, strings, lists, dicts)."""
        import torch  # here, not at module level: a plugin's registration must not import torch

        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last mid-stage checkpoint, or None. Our own file, still loaded without code."""
        if not self.checkpoint_path.is_file():
            return None
        import torch

        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or damaged by a kill mid-write: start over rather than fail
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.checkpoint_path.unlink(missing_ok=True)
            self.log(f"the mid-stage checkpoint {self.checkpoint_path} was damaged ({reason[:120]}); "
                     "discarded it and restarted the stage from the beginning")
            return None

    # ---------------------------------------------------------------- reporting

    def progress(self, step: int, total: int, **info: Any) -> None:
        """Report progress inside the stage (shown beside the stage bar)."""
        if self.on_progress is not None:
            self.on_progress(step, total, info)

    def cache_filled(self) -> None:
        """Say that this stage will add nothing more to the shared feature cache it reads (see
        :meth:`cache_dir`): the stages after it on the same cache may start while it goes on. A stage
        that never says so keeps them waiting until it ends. Saying it more than once is harmless."""
        if self.on_cache_filled is not None:
            self.on_cache_filled()

    def log(self, message: str) -> None:
        """A line worth keeping (a skipped NaN step, a halved batch); stored with the stage."""
        self.messages.append(message)
        log.info("%s: %s", self.key[:10], message)

    def cache_dir(self, *parts: str) -> Path:
        path = self.cache_root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
