"""The plugin contract: one pluggy hook per plugin kind, each handed a registry to fill.

A plugin package declares modules under the entry-point group ``harness`` and implements any of
these hooks with ``@harness.hookimpl``::

    from harness import hookimpl

    @hookimpl
    def harness_register_merge(registry):
        registry.add(MyMerge)

The class added must subclass the kind's interface in :mod:`harness.core.interfaces` and carry a
``name``, ``version``, ``summary`` and a pydantic ``Params`` model.
"""

from __future__ import annotations

import pluggy

from harness.core.plugin import PluginRegistry as Registry

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_register_upstream(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.UpstreamPlugin` classes: models under study (wav2vec2, ...)."""


@hookspec
def harness_register_corpus(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.CorpusPlugin` classes: corpora prepared into manifests."""


@hookspec
def harness_register_finetune(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.FinetunePlugin` classes: scenarios that turn θ0 into θft."""


@hookspec
def harness_register_merge(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.MergePlugin` classes: functions of state dicts."""


@hookspec
def harness_register_downstream(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.DownstreamPlugin` classes: SUPERB tasks and ABX."""


@hookspec
def harness_register_task(registry: Registry) -> None:
    """Add :class:`harness.core.interfaces.TaskPlugin` classes: trainable tasks that are not downstreams."""


KIND_HOOKS = {
    "upstream": "harness_register_upstream",
    "corpus": "harness_register_corpus",
    "finetune": "harness_register_finetune",
    "merge": "harness_register_merge",
    "downstream": "harness_register_downstream",
    "task": "harness_register_task",
}
