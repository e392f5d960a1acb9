"""ABX on every path (one or several CPU threads, CUDA when present) against the scores the
single-threaded implementation gave before it ran on threads and devices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.core.errors import HarnessError
from harness.evaluation.abx import abx, dtw_both, pair_table

# clustered_features(n_files=20, dim=12, seed=1), all four conditions, scored by the previous
# single-threaded CPU implementation: (librilight_compat, distance) -> scores
REFERENCE = {
    (False, "angular"): [0.011363636363636364, 0.027949601035538535, 0.04539310515873016, 0.05392688869313373],
    (False, "euclidean"): [0.026515151515151516, 0.015704517594398545, 0.04147445436507936, 0.054568935236890215],
    (True, "angular"): [0.01483585858585859, 0.037849802761447095, 0.06330191798941799, 0.06485429785337811],
    (True, "euclidean"): [0.020202020202020204, 0.039434289565427945, 0.06429398148148148, 0.06469582879717602],
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("compat", "distance"), list(REFERENCE))
def test_scores_equal_the_single_threaded_reference(clustered, compat, distance, threads, device):
    _, feats, items = clustered
    scores = abx(feats, items, 0.02, distance=distance, librilight_compat=compat, threads=threads, device=device)
    assert [r.score for r in scores] == pytest.approx(REFERENCE[(compat, distance)], abs=1e-6)


def test_threads_and_small_chunks_give_identical_scores_with_sorted_pair_keys(clustered, monkeypatch):
    _, feats, items = clustered
    files = sorted({it.file for it in items})[:8]  # 67 of the 178 items: every pair alone is slow
    items = [it for it in items if it.file in files]
    monkeypatch.setattr(pair_table.PairTable, "DENSE_MAX", 0)  # the keyed table, filled by threads
    one = abx(feats, items, 0.02, threads=1)
    assert all(r.score > 0 for r in one[1:])  # errors in the conditions the comparison should reach
    # a tiny budget: one pair per chunk, so every pair is aligned alone
    two = abx(feats, items, 0.02, threads=2, budget=1)
    assert [r.score for r in two] == [r.score for r in one]
    assert [r.pairs for r in two] == [r.pairs for r in one]


@pytest.mark.parametrize("device", DEVICES)
def test_batched_dtw_equals_each_pair_alone_with_ties(device):
    # pairs of every length end on different anti-diagonals; small integers make ties
    rng = np.random.default_rng(3)
    lx, ly = rng.integers(1, 10, 300), rng.integers(1, 10, 300)
    d = torch.from_numpy(rng.integers(0, 3, size=(300, 9, 9)).astype(np.float32))
    cost, len_xy, len_yx = dtw_both(d.to(device), torch.from_numpy(lx), torch.from_numpy(ly))
    for i in range(300):
        n, m = int(lx[i]), int(ly[i])
        c, a, b = dtw_both(d[i : i + 1, :n, :m], torch.tensor([n]), torch.tensor([m]))
        assert (cost[i].item(), len_xy[i].item(), len_yx[i].item()) == (c.item(), a.item(), b.item())


def test_threads_must_be_positive(clustered):
    _, feats, items = clustered
    with pytest.raises(HarnessError, match="ABX threads must be at least 1"):
        abx(feats, items, 0.02, threads=0)


def test_abx_command_threads_and_device(clustered, capsys):
    root, feats, items = clustered
    args = ["abx", "--features", str(root / "feats"), "--item", str(root / "x.item"), "--frame-shift", "0.02", "--json"]
    assert main([*args, "--threads", "2"]) == 0
    assert [r["score"] for r in json.loads(capsys.readouterr().out)] == pytest.approx(
        REFERENCE[(False, "angular")], abs=1e-6
    )
    assert main([*args, "--device", "nonsense"]) == 2
    assert "--device 'nonsense' is not a device; use auto, cpu, cuda or cuda:N." in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda"]) == 2
        assert "--device cuda asks for a CUDA GPU, but torch sees none" in capsys.readouterr().err
