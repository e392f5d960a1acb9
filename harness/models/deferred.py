"""An upstream plugin declared without torch, whose model code is loaded on first use.

Registering and listing plugins reads only a plugin's declaration (name, version, summary, Params,
flags); building, rebuilding and exporting models need torch and, for the wav2vec 2.0 family,
transformers. A :class:`DeferredUpstreamPlugin` keeps the declaration in the registered module and
hands those three calls to its :meth:`~DeferredUpstreamPlugin.implementation`, an
:class:`~harness.core.interfaces.UpstreamPlugin` from a module that :meth:`implementation` imports.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.interfaces import UpstreamPlugin
from harness.core.plugin import P

if TYPE_CHECKING:
    from harness.core.model_types import UpstreamModel

__all__ = ["DeferredUpstreamPlugin"]


class DeferredUpstreamPlugin(UpstreamPlugin[P]):
    """The registered half of an upstream: its declaration; models come from :meth:`implementation`."""

    @abstractmethod
    def implementation(self) -> UpstreamPlugin[Any]:
        """The plugin that builds, rebuilds and exports this family's models (imported here)."""

    def build(self, params: P, seed: int) -> UpstreamModel:
        return self.implementation().build(params, seed)

    def from_config(self, config: dict[str, Any]) -> UpstreamModel:
        return self.implementation().from_config(config)

    def export(self, model: UpstreamModel, fmt: str, out_dir: Path) -> None:
        self.implementation().export(model, fmt, out_dir)
