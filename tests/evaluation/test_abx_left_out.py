"""Items that cover no frame: counted on each score, said once per ABX stage however many layers it scores."""

from __future__ import annotations

import logging

import numpy as np

from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation.abx import Item, abx, read_item_file, write_item_file
from tests.downstream_helpers import FakeUpstream, make_ctx, make_tiny_corpus


def test_scores_count_the_items_left_out_and_abx_logs_nothing_at_info(caplog):
    feats = {"u": np.eye(4, dtype=np.float32)}
    items = [Item("u", 0.02 * i, 0.02 * (i + 1), p, "#", "#", "s") for i, p in enumerate("aabb")]
    items.append(Item("u", 5.0, 5.1, "a", "#", "#", "s"))  # past the end of the features
    with caplog.at_level(logging.INFO):
        scores = abx(feats, items, 0.02)
    assert all((s.n_items, s.left_out) == (5, 1) for s in scores)
    assert scores[0].left_out_note == "1 of 5 items have no frame and are left out"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    assert abx(feats, items[:4], 0.02)[0].left_out_note is None


def test_an_abx_stage_over_every_layer_says_the_left_out_items_once_per_item_file(tmp_path, caplog):
    root = make_tiny_corpus(tmp_path / "tones")
    for name in ("dev.item", "test.item"):
        items = read_item_file(root / name)
        write_item_file(root / name, [*items, Item(items[0].file, 99.0, 99.1, "a", "#", "#", items[0].speaker)])
    upstream = FakeUpstream()
    ctx = make_ctx(tmp_path / "stage")
    plugin = PluginManager().create("downstream", "abx")
    with caplog.at_level(logging.INFO):
        plugin.evaluate(upstream, PreparedCorpus(root), validate_params(plugin.Params, {}, "abx"), ctx)
    said = [r.getMessage() for r in caplog.records if "have no frame" in r.getMessage()]
    n_dev, n_test = (len(read_item_file(root / n)) for n in ("dev.item", "test.item"))
    assert upstream.num_hidden_states > 1  # every layer is scored on dev: the note would repeat per layer
    assert len(said) == 1, said
    assert said[0].endswith(f"ABX dev: 1 of {n_dev} items have no frame and are left out; "
                            f"test: 1 of {n_test} items have no frame and are left out")
    assert ctx.messages == [said[0].split(": ", 1)[1]]
