"""Frame distances and dynamic time warping, batched on torch."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch


def librilight_normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit rows plus one coordinate: 1e-12, or -2e12 for null rows (then set to 1/sqrt(D)),
    which puts a null frame at the largest angular distance from any other."""
    x = x.float()
    norm2 = (x**2).sum(dim=1, keepdim=True)
    zero = (norm2 == 0).view(-1)
    out = x / torch.sqrt(norm2)
    out[zero] = 1 / math.sqrt(x.shape[1])
    border = torch.full((x.shape[0], 1), 1e-12, dtype=out.dtype)
    border[zero] = -2 * 1e12
    return torch.cat([out, border], dim=1)


def frame_distances(x: torch.Tensor, y: torch.Tensor, distance: str, exact: bool) -> torch.Tensor:
    """Batched frame distances: ``x`` P×n×D, ``y`` P×m×D -> P×n×m (angular expects unit rows).

    Computed on the tensors' device; each pair's distances do not depend on the batch around it.
    """
    if exact:  # libri-light's order of accumulation: elementwise products summed over D
        # in slices of about a megabyte, which stay in cache (twice as fast as one big product);
        # an accelerator takes larger slices (fewer kernel launches)
        p, n, m, d = x.shape[0], x.shape[1], y.shape[1], x.shape[2]
        slice_floats = (1 << 18) if x.device.type == "cpu" else (1 << 26)
        step = max(1, slice_floats // max(1, n * m * d))
        out = torch.empty(p, n, m, device=x.device)
        for i in range(0, p, step):
            xs, ys = x[i : i + step].unsqueeze(2), y[i : i + step].unsqueeze(1)
            out[i : i + step] = (xs * ys).sum(dim=3) if distance == "angular" else ((xs - ys) ** 2).sum(dim=3)
        return torch.clamp(out, -1, 1).acos() / math.pi if distance == "angular" else torch.sqrt(out)
    with _full_fp32(x.device):
        if distance == "angular":
            return torch.clamp(torch.bmm(x, y.transpose(1, 2)), -1, 1).acos() / math.pi
        return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def cross_products(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Every frame of ``x`` (N×D) against every frame of ``y`` (M×D), before the final transform:
    dot products for angular (see :func:`finish_distances`), Euclidean distances otherwise.

    One matrix product instead of a small one per pair: the tokens of a chunk of pairs repeat, so
    their frames are multiplied once. Euclidean distances are summed from differences (the
    product form loses digits to cancellation).
    """
    with _full_fp32(x.device):
        if distance == "angular":
            return x @ y.T
        return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def finish_distances(products: torch.Tensor, distance: str) -> torch.Tensor:
    """Angular distances (in [0, 1]) from dot products of unit rows; Euclidean ones pass through."""
    return torch.clamp(products, -1, 1).acos() / math.pi if distance == "angular" else products


@contextlib.contextmanager
def _full_fp32(device: torch.device) -> Iterator[None]:
    """Float32 products without TF32 on CUDA (TF32 keeps 10 mantissa bits: scores would move)."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


def dtw_batch(dist: torch.Tensor, len_x: torch.Tensor, len_y: torch.Tensor) -> torch.Tensor:
    """DTW cost divided by the alignment path length, for a batch of padded distance matrices.

    ``dist`` P×n×m (values beyond ``len_x``×``len_y`` are ignored), lengths ≥ 1. Steps: diagonal,
    right, down; the path length is that of the path backtracked from the end (ties: diagonal, then
    left, then up), computed forward along with the cost.
    """
    cost, length, _ = dtw_both(dist, len_x, len_y)
    return cost / length


def dtw_both(
    dist: torch.Tensor, len_x: torch.Tensor, len_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DTW costs and the path lengths of both orientations, in one pass.

    The cost is the same for ``dist`` and its transpose (the minimum of the same three numbers),
    but the backtracked path may differ on ties: ``len_xy`` prefers diagonal, left, up (rows are
    x); ``len_yx`` is the length the transposed problem gives (diagonal, up, left). The loop runs
    over the n + m - 1 anti-diagonals, each updating every pair at once, on ``dist``'s device; the
    diagonal each pair ends on is known from the lengths beforehand, so the loop never waits on it.
    """
    p, n, m = dist.shape
    dev = dist.device
    if p == 0:
        return torch.zeros(0, device=dev), torch.ones(0, device=dev), torch.ones(0, device=dev)
    # Padded cost C (n+1)×(m+1): C[0,0] = 0, the rest of row 0 and column 0 infinite. Diagonal
    # k = i + j holds C[i, k-i] at position i (0..n), stored position-major (n+1)×P so that every
    # slice below is contiguous; cells outside the matrix cost +inf, so they never win a minimum.
    rows = torch.arange(1, n + 1, device=dev).view(1, -1)
    diags = torch.arange(2, n + m + 1, device=dev).view(-1, 1)
    cols = diags - rows
    valid = (cols >= 1) & (cols <= m)
    idx = ((rows - 1) * m + (cols - 1).clamp(0, m - 1)).view(-1)
    skew = dist.float().reshape(p, n * m).T[idx].view(n + m - 1, n, p)
    skew.masked_fill_(~valid.unsqueeze(-1), float("inf"))
    cost = [torch.full((n + 1, p), float("inf"), device=dev) for _ in range(3)]
    len_a = [torch.zeros((n + 1, p), dtype=torch.int16, device=dev) for _ in range(3)]
    len_b = [torch.zeros((n + 1, p), dtype=torch.int16, device=dev) for _ in range(3)]
    cost[0][0] = 0.0  # k = 0; k = 1 (cost[1]) is all infinite
    # the diagonal each pair ends on, scheduled on the host: no device synchronisation in the loop
    end_k = (len_x.cpu() + len_y.cpu()).numpy().astype(np.int64)
    by_end = np.argsort(end_k, kind="stable")
    bounds = np.searchsorted(end_k[by_end], np.arange(n + m + 2))
    by_end_dev = torch.from_numpy(by_end).to(dev)
    lx = len_x.to(dev).long()
    out_cost = torch.empty(p, device=dev)
    out_a = torch.ones(p, dtype=torch.int16, device=dev)
    out_b = torch.ones(p, dtype=torch.int16, device=dev)
    for k in range(2, n + m + 1):
        prev2, prev1, cur = cost[(k - 2) % 3], cost[(k - 1) % 3], cost[k % 3]
        up, left, diag = prev1[:-1], prev1[1:], prev2[:-1]
        take_left = left <= up
        side = torch.minimum(left, up)
        take_diag = diag <= side  # diag <= left and diag <= up
        torch.add(skew[k - 2], torch.minimum(diag, side), out=cur[1:])
        cur[0] = float("inf")  # C[0, k] (the buffer held C[0,0] = 0 three diagonals ago)
        take_up = up <= left  # the transposed problem's "left"
        for lens, prefer_left in ((len_a, take_left), (len_b, ~take_up)):
            l2, l1, lc = lens[(k - 2) % 3], lens[(k - 1) % 3], lens[k % 3]
            side_len = torch.where(prefer_left, l1[1:], l1[:-1])
            torch.add(torch.where(take_diag, l2[:-1], side_len), 1, out=lc[1:])
        if bounds[k + 1] > bounds[k]:
            done = by_end_dev[bounds[k] : bounds[k + 1]]
            at = lx[done]
            out_cost[done] = cur[at, done]
            out_a[done] = len_a[k % 3][at, done]
            out_b[done] = len_b[k % 3][at, done]
    return out_cost, out_a, out_b
