"""Fixtures shared by the ABX tests."""

import pytest

from harness.evaluation.abx import write_item_file
from tests.downstream_helpers import clustered_features


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """20 files of 12-dim clustered features, their items and item file: (root, features, items)."""
    root = tmp_path_factory.mktemp("abx")
    feats, items = clustered_features(root / "feats", n_files=20, dim=12, seed=1)
    write_item_file(root / "x.item", items)
    return root, feats, items
