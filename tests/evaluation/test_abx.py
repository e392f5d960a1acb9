"""ABX: hand-made cases, the batched DTW, libri-light's frame slicing, and agreement with libri-light."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.core.errors import HarnessError
from harness.evaluation.abx import Item, abx, dtw_batch, dtw_both, frame_range, read_item_file, write_item_file
from tests.downstream_helpers import librilight_abx


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_hand_made_within_speaker_any_context():
    # four one-frame tokens of one speaker at angles a1 0°, a2 90°, b1 30°, b2 150° (angular
    # distance = angle / 180°). Cell (a, b): x = a1 is right only against b2, x = a2 never -> 1/4
    # right; cell (b, a): x = b2 is right only against a1, x = b1 never -> 1/4. Error = 3/4.
    feats = {"u": np.array([_unit(0), _unit(90), _unit(30), _unit(150)], dtype=np.float32)}
    items = [Item("u", 0.02 * i, 0.02 * (i + 1), p, "#", "#", "s") for i, p in enumerate("aabb")]
    (res,) = abx(feats, items, 0.02, speaker=["within"], context=["any"])
    assert res.score == pytest.approx(0.75)
    assert sorted(res.pairs) == [("a", "b", pytest.approx(0.75)), ("b", "a", pytest.approx(0.75))]


def test_hand_made_across_speaker_and_ties():
    # A, B from speaker s, X from speaker t. x = a' (0°) is nearer a (10°) than b (90°): right.
    feats = {"u": np.array([_unit(10), _unit(90)], np.float32), "v": np.array([_unit(0)], np.float32)}
    items = [Item("u", 0.0, 0.02, "a", "#", "#", "s"), Item("u", 0.02, 0.04, "b", "#", "#", "s"),
             Item("v", 0.0, 0.02, "a", "#", "#", "t")]
    (res,) = abx(feats, items, 0.02, speaker=["across"], context=["any"])
    assert res.score == 0.0 and res.pairs == [("a", "b", 0.0)]
    # equidistant A and B count one half
    feats["u"] = np.array([_unit(40), _unit(-40)], np.float32)
    (res,) = abx(feats, items, 0.02, speaker=["across"], context=["any"])
    assert res.score == pytest.approx(0.5)


def test_dtw_cost_over_path_length():
    d = torch.tensor([[[1.0, 2.0], [3.0, 1.0]]])
    # cost 1 + 1 along the diagonal, path of 2 cells
    assert dtw_batch(d, torch.tensor([2]), torch.tensor([2])).item() == pytest.approx(1.0)
    # padding beyond the lengths is ignored; a 1×3 alignment has 3 cells
    d = torch.tensor([[[1.0, 2.0, 3.0, 99.0], [99.0, 99.0, 99.0, 99.0]]])
    assert dtw_batch(d, torch.tensor([1]), torch.tensor([3])).item() == pytest.approx(2.0)


def test_dtw_matches_librilight_cython_including_ties():
    ll = pytest.importorskip("libri_light_dtw")
    rng = np.random.default_rng(0)
    mats, lx, ly = [], [], []
    for _ in range(200):
        n, m = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        mats.append(rng.integers(0, 3, size=(n, m)).astype(np.float32))  # small integers: many ties
        lx.append(n)
        ly.append(m)
    d = torch.full((len(mats), 8, 8), 7.0)
    for i, mat in enumerate(mats):
        d[i, : mat.shape[0], : mat.shape[1]] = torch.from_numpy(mat)
    cost, len_xy, len_yx = dtw_both(d, torch.tensor(lx), torch.tensor(ly))
    for i, mat in enumerate(mats):
        assert (cost[i] / len_xy[i]).item() == ll._dtw(lx[i], ly[i], mat, True)
        assert (cost[i] / len_yx[i]).item() == ll._dtw(ly[i], lx[i], np.ascontiguousarray(mat.T), True)


def test_frame_slicing_and_librilight_compat():
    # frames centred at (i + 1/2) * 0.02 inside [0.03, 0.09]: i = 1, 2, 3, 4
    assert frame_range(0.03, 0.09, 100, 0.02) == (1, 5)
    assert frame_range(0.03, 0.09, 100, 0.02, librilight_compat=True) == (1, 4)
    assert frame_range(0.0, 0.02, 100, 0.02) == (0, 1)
    assert frame_range(0.0, 0.02, 100, 0.02, librilight_compat=True) == (0, 0)  # dropped by libri-light
    assert frame_range(0.5, 9.0, 30, 0.02) == (25, 30)  # clipped to the features


def test_centres_on_a_boundary_are_inside_by_exact_arithmetic_as_fastabxs():
    # a 10 ms grid puts every other boundary on a 20 ms frame's centre; decide each in exact fractions
    misses = 0
    for ms in range(0, 10_000, 10):
        t = ms / 1000
        exact_start = math.ceil(Fraction(ms, 1000) * 50 - Fraction(1, 2))
        exact_last = math.floor(Fraction(ms, 1000) * 50 - Fraction(1, 2))
        start, end = frame_range(t, t, 10**6, 0.02)
        assert start == max(0, exact_start) and end == exact_last + 1, ms
        misses += frame_range(t, t, 10**6, 0.02, librilight_compat=True)[0] != max(0, exact_start)
    assert misses > 0  # libri-light's float arithmetic, kept in compat mode, misses some of them


def test_item_file_round_trip_and_errors(tmp_path):
    items = [Item("f1", 0.1, 0.25, "ah", "b", "k", "spk")]
    write_item_file(tmp_path / "x.item", items)
    assert read_item_file(tmp_path / "x.item") == items
    (tmp_path / "bad.item").write_text("#header\nf1 0.1 0.2 ah b spk\n")
    with pytest.raises(HarnessError, match="line 2: expected 7 columns"):
        read_item_file(tmp_path / "bad.item")
    with pytest.raises(HarnessError, match="no features"):
        abx({}, items, 0.02)


def test_identical_to_librilight_with_compat(clustered):
    root, feats, items = clustered
    ref = librilight_abx(root / "feats", root / "x.item", 0.02)
    if ref is None:
        pytest.skip("zerospeech-libriabx2 is not installed")
    ours = {f"{r.speaker}-{r.context}": r.score for r in abx(feats, items, 0.02, librilight_compat=True)}
    assert set(ours) == set(ref)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    # without the compatibility slicing the numbers differ (each token keeps its last frame)
    plain = {f"{r.speaker}-{r.context}": r.score for r in abx(feats, items, 0.02)}
    assert plain != pytest.approx(ours, abs=1e-6)


def test_abx_command(clustered, capsys):
    root, feats, items = clustered
    args = ["abx", "--features", str(root / "feats"), "--item", str(root / "x.item"), "--frame-shift", "0.02"]
    assert main([*args, "--speaker", "within", "--context", "any", "--librilight-compat", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (expected,) = abx(feats, items, 0.02, speaker=["within"], context=["any"], librilight_compat=True)
    assert out == [{"speaker": "within", "context": "any", "score": pytest.approx(expected.score)}]
    assert main(args) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5  # header + four conditions
    assert main(["abx", "--features", str(root / "nope"), "--item", str(root / "x.item"), "--frame-shift", "0.02"]) == 2


def test_large_sets_use_sorted_pair_keys_with_the_same_result(clustered, monkeypatch):
    from harness.evaluation.abx import pair_table

    _, feats, items = clustered
    dense = [r.score for r in abx(feats, items, 0.02)]
    monkeypatch.setattr(pair_table.PairTable, "DENSE_MAX", 0)
    assert [r.score for r in abx(feats, items, 0.02)] == dense


@pytest.mark.parametrize("high", [30, 2**40])  # small codes; codes past int64, where rows are compared
def test_cells_are_averaged_per_distinct_key_as_a_row_wise_unique_does(high):
    from harness.evaluation.abx.score import _group_mean

    rng = np.random.default_rng(high)
    keys = np.stack([rng.integers(-1, high, 3000) for _ in range(4)], axis=1).astype(float)
    keys[1500:] = keys[:1500]  # repeated rows
    values = rng.random(3000)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    got_keys, got_means = _group_mean(keys, values)
    assert np.array_equal(got_keys, uniq)
    assert np.array_equal(got_means, np.bincount(inv, weights=values) / np.bincount(inv))
