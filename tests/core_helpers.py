"""Shared helpers of the core tests: a plugin manager with the toy plugins, recipe files."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.core.registry import PluginManager
from tests import toy_plugins

TOY_RECIPE = """\
name: toy
output: {output}
seeds: [0]
score: {{reference: {table}}}
corpora:
  nums: {{plugin: toy_corpus, n: 6}}
upstreams:
  small: {{plugin: toy_up, width: 4}}
finetune:
  base: null
  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}
merges:
  interp: {{plugin: toy_merge, alpha: [0.0, 0.25, 1.0]}}
downstreams:
  ev: {{plugin: toy_eval, corpus: nums}}
"""

TABLE = """\
toy_eval.acc: [0.0, 100.0]
"""


def toy_manager() -> PluginManager:
    return PluginManager(modules=[(toy_plugins, "toy-tests", "0.0")])


def write_recipe(tmp: Path, text: str | None = None, **fmt: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "table.yaml").write_text(TABLE)
    fmt = {"output": str(tmp / "out"), "table": str(tmp / "table.yaml"), **fmt}
    path = tmp / "recipe.yaml"
    path.write_text(textwrap.dedent(text if text is not None else TOY_RECIPE).format(**fmt))
    return path
