"""A fine-tuning stage stores each dev metric with the direction its scenario declares (PER is
lower-is-better), and a scenario returning a plain dict keeps "higher"."""

from __future__ import annotations

import sys

from harness import hookimpl
from harness.core.interfaces import FinetuneResult
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import PluginManager
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests import toy_plugins
from tests.core_helpers import TOY_RECIPE, write_recipe


class PerFinetune(toy_plugins.ToyFinetune):
    """The toy scenario reporting a dev PER (lower is better) beside an accuracy."""

    name = "toy_ft_per"

    def finetune(self, upstream, corpora, params, ctx) -> FinetuneResult:
        super().finetune(upstream, corpora, params, ctx)
        return FinetuneResult({"per": 12.5, "acc": 80.0}, {"per": "lower", "acc": "higher"})


@hookimpl
def harness_register_finetune(registry):
    registry.add(PerFinetune)


def _finetune_directions(tmp_path, plugin: str) -> dict[str, str]:
    manager = PluginManager(modules=[(toy_plugins, "toy-tests", "0.0"), (sys.modules[__name__], "tests", "0")])
    path = write_recipe(tmp_path, TOY_RECIPE.replace("plugin: toy_ft,", f"plugin: {plugin},"))
    recipe = load_recipe(path, manager)
    summary = run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager))
    assert summary.ok
    with Store(recipe.output, readonly=True) as store:
        return {m.full_name: m.direction for m in store.metrics() if m.task.startswith("finetune.")}


def test_finetune_metrics_keep_their_direction(tmp_path):
    assert _finetune_directions(tmp_path, "toy_ft_per") == {"finetune.toy_ft_per.per": "lower",
                                                            "finetune.toy_ft_per.acc": "higher"}


def test_a_plain_dict_of_metrics_is_higher_is_better(tmp_path):
    assert _finetune_directions(tmp_path, "toy_ft") == {"finetune.toy_ft.steps": "higher"}
