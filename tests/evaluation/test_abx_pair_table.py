"""Token-pair DTW distances: one product per tile of tokens gives every pair's distance, in the
orientation asked for, as computing each pair from its own frames does; so does aligning block by
block (large sets), and the scores agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.evaluation.abx import abx, dtw_batch, frame_distances, librilight_normalize
from harness.evaluation.abx import score as abx_score
from harness.evaluation.abx.pair_table import BlockDistances, PairAligner, PairTable, TokenFrames


def _tokens(seed: int = 2, n_tokens: int = 60) -> TokenFrames:
    """Tokens of many lengths (pairs are swapped both ways) whose frames repeat (DTW ties)."""
    rng = np.random.default_rng(seed)
    length = rng.integers(1, 9, n_tokens)
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    frames = librilight_normalize(torch.from_numpy(rng.integers(0, 2, (int(length.sum()), 2)).astype(np.float32)))
    return TokenFrames(frames, start, length)


def _alone(tokens: TokenFrames, a: int, b: int, distance: str) -> float:
    """DTW of one pair from its own frames, ``a`` as rows."""
    fa = tokens.frames[tokens.start[a] : tokens.start[a] + tokens.length[a]].unsqueeze(0)
    fb = tokens.frames[tokens.start[b] : tokens.start[b] + tokens.length[b]].unsqueeze(0)
    dist = frame_distances(fa, fb, distance, exact=False)
    return dtw_batch(dist, torch.tensor([tokens.length[a]]), torch.tensor([tokens.length[b]])).item()


@pytest.mark.parametrize("distance", ["angular", "euclidean"])
@pytest.mark.parametrize("dense_max", [6000, 0])  # the dense matrix and the sorted keys
def test_every_pair_both_ways_equals_the_pair_aligned_alone(distance, dense_max, monkeypatch):
    monkeypatch.setattr(PairTable, "DENSE_MAX", dense_max)
    tokens = _tokens()
    everything = np.arange(len(tokens.start))
    aligner = PairAligner(tokens, distance, exact=False, budget=4000)
    got = PairTable(aligner, [(everything, everything)]).lookup(everything, everything)
    want = np.array([[_alone(tokens, a, b, distance) if a != b else 0.0 for b in everything] for a in everything])
    np.testing.assert_allclose(got, want, atol=1e-6)
    # block by block: the same distances, for overlapping, disjoint and repeated token sets
    blocks = BlockDistances(aligner)
    np.testing.assert_allclose(blocks.lookup(everything, everything), want, atol=1e-6)
    a, b = np.array([5, 3, 3, 40]), np.array([7, 3, 59, 12, 5])
    np.testing.assert_allclose(blocks.lookup(a, b), want[np.ix_(a, b)], atol=1e-6)
    np.testing.assert_allclose(blocks.lookup(a[:2], b[2:]), want[np.ix_(a[:2], b[2:])], atol=1e-6)
    # DTW's path length breaks ties by orientation; some pairs are aligned with the other token as
    # rows (the shorter one), and their two directions differ
    longer_first = tokens.length[:, None] > tokens.length[None, :]
    assert (np.triu(longer_first, 1) & (np.abs(want - want.T) > 1e-6)).any()


def test_sparse_pairs_give_the_same_distances_from_a_tile_product_or_one_by_one(monkeypatch):
    tokens = _tokens(seed=1)
    rng = np.random.default_rng(2)
    blocks = [(rng.choice(60, 3, replace=False), rng.choice(60, 3, replace=False)) for _ in range(5)]
    aligner = PairAligner(tokens, "angular", exact=False, budget=1 << 20)
    monkeypatch.setattr(PairAligner, "PRODUCT_WASTE", float("inf"))  # every tile one product, however sparse
    tiled = PairTable(aligner, blocks)
    monkeypatch.setattr(PairAligner, "PRODUCT_WASTE", 0)  # no tile is dense enough: every pair alone
    alone = PairTable(aligner, blocks)
    for rows, cols in blocks:
        np.testing.assert_allclose(tiled.lookup(rows, cols), alone.lookup(rows, cols), atol=1e-6)


@pytest.mark.parametrize("distance", ["angular", "euclidean"])
def test_scores_with_tiles_equal_scores_pair_by_pair(clustered, distance, monkeypatch):
    _, feats, items = clustered
    tiled = abx(feats, items, 0.02, distance=distance)
    monkeypatch.setattr(PairAligner, "PRODUCT_WASTE", 0)
    alone = abx(feats, items, 0.02, distance=distance)
    assert [r.score for r in tiled] == pytest.approx([r.score for r in alone], abs=1e-6)


def test_large_sets_are_aligned_block_by_block_with_the_same_scores(clustered, monkeypatch, caplog):
    _, feats, items = clustered
    at_once = abx(feats, items, 0.02)
    monkeypatch.setattr(abx_score, "TABLE_MAX_PAIRS", 0)
    with caplog.at_level("INFO", logger="harness.evaluation.abx"):
        by_block = abx(feats, items, 0.02, threads=2)
    assert "aligning them block by block" in caplog.text
    assert [r.score for r in by_block] == pytest.approx([r.score for r in at_once], abs=1e-6)
    for block, once in zip(by_block, at_once, strict=True):
        assert [pair[:2] for pair in block.pairs] == [pair[:2] for pair in once.pairs]
        assert [pair[2] for pair in block.pairs] == pytest.approx([pair[2] for pair in once.pairs], abs=1e-6)


@pytest.mark.parametrize("budget", [1 << 10, 1 << 16, 1 << 24])  # many small tiles to one per length
def test_tiles_take_every_pair_once_x_of_one_length_in_order_and_y_lengths_ascending(budget):
    tokens = _tokens(n_tokens=80)
    rng = np.random.default_rng(budget)
    x, y = rng.integers(0, 80, 3000), rng.integers(0, 80, 3000)
    tiles = PairAligner(tokens, "angular", False, budget)._tiles(x, y)
    assert np.array_equal(np.sort(np.concatenate(tiles)), np.arange(3000))
    length = tokens.length
    y_frames = int(length[np.unique(y)].sum())
    last = (-1, -1)
    for tile in tiles:
        assert len(set(length[x[tile]])) == 1  # one x length: one product shape
        ly = length[y[tile]]
        assert np.all(np.diff(ly) >= 0) and all(np.all(np.diff(tile[ly == v]) > 0) for v in np.unique(ly))
        members = np.unique(x[tile])
        assert len(members) <= max(1, (budget // 4) // (int(length[x[tile[0]]]) * y_frames))
        first = (int(length[members[0]]), int(members[0]))  # tiles in (x length, token) order
        assert first > last
        last = (int(length[members[-1]]), int(members[-1]))
