"""Helpers behind the shared corpus fixtures in conftest.py (audio and corpora area)."""

from __future__ import annotations

from pathlib import Path

from harness.core.interfaces import CorpusPlugin, PluginParams
from harness.core.registry import PluginManager
from harness.core.stage import StageContext


def prepare_for_tests(plugin: CorpusPlugin, params: PluginParams, root: Path) -> Path:
    """Prepare ``plugin`` with ``params`` into ``root/corpus`` and return that folder."""
    out = root / "corpus"
    out.mkdir(parents=True)
    ctx = StageContext(
        key=f"test-{plugin.name}",
        out_dir=out,
        work_dir=root / "work",
        cache_root=root / "cache",
        seed=int(getattr(params, "seed", 0)),
        plugins=PluginManager(entry_points=False),
    )
    plugin.prepare(params, out, ctx)
    return out
