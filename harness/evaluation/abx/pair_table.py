"""The DTW distances of every token pair that an ABX score needs, each unordered pair aligned once.

Pairs are gathered in tiles: tokens of one length as rows (x) against the frames of every token they
pair with (y). A tile's frame distances are one matrix product, from which each pair's block is
picked; its pairs are then aligned in chunks sorted by y length (little padding). Tiles and chunks
are cut by sizes alone, never by the thread count, so the scores do not depend on the cores used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from harness.core.threads import torch_threads
from harness.evaluation.abx.dtw import cross_products, dtw_both, finish_distances, frame_distances


@dataclass(frozen=True)
class TokenFrames:
    """Every token's frames back to back (F×D) with each token's start and length in them."""

    frames: torch.Tensor
    start: np.ndarray
    length: np.ndarray

    def gather(self, which: np.ndarray, width: int) -> torch.Tensor:
        """Frames of tokens ``which`` as len(which)×width×D, each padded with its last frame."""
        return self.frames[self._frame_index(which, width)]

    def _frame_index(self, which: np.ndarray, width: int) -> torch.Tensor:
        dev = self.frames.device
        start = torch.from_numpy(self.start[which]).to(dev)
        last = torch.from_numpy(self.length[which] - 1).to(dev)
        return start.view(-1, 1) + torch.minimum(torch.arange(width, device=dev).view(1, -1), last.view(-1, 1))


class PairTable:
    """DTW distances of token pairs in both orientations; a dense matrix for small sets, sorted
    keys otherwise."""

    DENSE_MAX = 6000
    PAIRS_PER_CHUNK = 16384
    PRODUCT_WASTE = 4  # a tile's product may hold this many times the frame blocks its pairs need

    def __init__(
        self,
        tokens: TokenFrames,
        blocks: list[tuple[np.ndarray, np.ndarray]],
        distance: str,
        exact: bool,
        budget: int,
        threads: int = 1,
    ):
        n_tok = len(tokens.start)
        self.n_tokens = n_tok
        self.tokens, self.distance, self.exact, self.budget = tokens, distance, exact, budget
        if n_tok <= self.DENSE_MAX:  # mark the needed pairs in a matrix: no sorting, no duplicates
            mask = np.zeros((n_tok, n_tok), dtype=bool)
            for rows, cols in blocks:
                mask[np.ix_(rows, cols)] = True
            x, y = np.nonzero(np.triu(mask | mask.T, 1))
            keys = x * n_tok + y
        else:
            pairs = [np.stack(np.meshgrid(r, c, indexing="ij"), -1).reshape(-1, 2) for r, c in blocks]
            flat = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
            lo, hi = flat.min(axis=1), flat.max(axis=1)
            keys = np.sort((lo * n_tok + hi)[lo != hi])
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
            x, y = keys // n_tok, keys % n_tok
        # each pair aligned with the shorter token as rows (ties: the earlier one), so a tile of
        # rows meets only the tokens after it in (length, index) order: half of all products
        rank = np.empty(n_tok, dtype=np.int64)
        rank[np.lexsort((np.arange(n_tok), tokens.length))] = np.arange(n_tok)
        self._swapped = rank[x] > rank[y]
        self._x, self._y = np.where(self._swapped, y, x), np.where(self._swapped, x, y)
        self._fwd = np.empty(len(keys), dtype=np.float32)
        self._bwd = np.empty(len(keys), dtype=np.float32)
        tiles = self._tiles()
        if threads > 1 and tokens.frames.device.type == "cpu":
            # one tile per thread at a time, each on one intra-op thread: torch releases the GIL
            # inside every operation, and the many small operations of a DTW run best unthreaded
            with torch_threads(1), ThreadPoolExecutor(threads) as pool:
                list(pool.map(self._align_tile, tiles))
        else:
            for tile in tiles:
                self._align_tile(tile)
        self.dense: np.ndarray | None = None
        if n_tok <= self.DENSE_MAX:
            self.dense = np.zeros((n_tok, n_tok), dtype=np.float32)
            self.dense[x, y] = self._fwd
            self.dense[y, x] = self._bwd
        else:
            self.keys, self.fwd, self.bwd = keys, self._fwd, self._bwd

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """DTW(x[i], y[j]) (x's frames as rows) as a len(x)×len(y) matrix; 0 where x[i] == y[j]."""
        if self.dense is not None:
            return self.dense[np.ix_(x, y)]
        xx, yy = np.broadcast_arrays(x[:, None], y[None, :])
        lo, hi = np.minimum(xx, yy), np.maximum(xx, yy)
        pos = np.searchsorted(self.keys, lo * self.n_tokens + hi).clip(0, max(len(self.keys) - 1, 0))
        out = np.where(xx <= yy, self.fwd[pos], self.bwd[pos]) if len(self.keys) else np.zeros(xx.shape)
        return np.where(xx == yy, 0.0, out).astype(np.float32)

    def _tiles(self) -> list[np.ndarray]:
        """Pair indices per tile: x tokens of one length, as many as keep the tile's product within
        a quarter of the budget, their pairs sorted by y length."""
        if not len(self._x):
            return []
        length = self.tokens.length
        ly = length[self._y]
        total_frames = int(length.sum())
        # x tokens in (length, index) order, cut into runs of one length sized for the product
        x_tokens = np.unique(self._x)
        x_tokens = x_tokens[np.lexsort((x_tokens, length[x_tokens]))]
        rows = length[x_tokens]
        run_start = np.concatenate([[0], np.flatnonzero(np.diff(rows)) + 1])
        run_of = np.repeat(np.arange(len(run_start)), np.diff(np.append(run_start, len(rows))))
        per_tile = np.maximum(1, (self.budget // 4) // (rows * total_frames))  # x tokens per tile
        within = (np.arange(len(rows)) - run_start[run_of]) // per_tile
        tile_of = np.zeros(self.n_tokens, dtype=np.int64)
        tile_of[x_tokens] = run_of * (len(rows) + 1) + within  # ordered by run, then by tile in it
        which = tile_of[self._x]
        order = np.lexsort((ly, which))
        return np.split(order, np.flatnonzero(np.diff(which[order])) + 1)

    def _align_tile(self, pairs: np.ndarray) -> None:
        x, y = self._x[pairs], self._y[pairs]
        lx, ly = self.tokens.length[x], self.tokens.length[y]
        n = int(lx[0])
        products = None if self.exact else self._tile_products(x, y, n)
        size = self._chunk_size(n, int(ly[-1]))
        for lo in range(0, len(pairs), size):
            hi = min(lo + size, len(pairs))
            m = int(ly[hi - 1])  # y lengths ascend: the chunk's last pair is its widest
            if products is None:
                fx, fy = self.tokens.gather(x[lo:hi], n), self.tokens.gather(y[lo:hi], m)
                dist = frame_distances(fx, fy, self.distance, self.exact)
            else:
                dist = products.pick(x[lo:hi], y[lo:hi], ly[lo:hi], n, m)
            cost, len_xy, len_yx = dtw_both(dist, torch.from_numpy(lx[lo:hi]), torch.from_numpy(ly[lo:hi]))
            # the key's orientation (lower index as rows) is the transposed one where swapped
            swapped = torch.from_numpy(self._swapped[pairs[lo:hi]]).to(cost.device)
            self._fwd[pairs[lo:hi]] = (cost / torch.where(swapped, len_yx, len_xy)).cpu().numpy()
            self._bwd[pairs[lo:hi]] = (cost / torch.where(swapped, len_xy, len_yx)).cpu().numpy()

    def _chunk_size(self, n: int, m: int) -> int:
        dim = self.tokens.frames.shape[1]
        per_pair = n * m * (dim + 8) + (n + m) * dim if self.exact else 11 * n * m
        # on the CPU, chunks that stay in cache; an accelerator takes the budget (fewer launches)
        cap = self.PAIRS_PER_CHUNK if self.tokens.frames.device.type == "cpu" else self.budget
        return max(1, min(self.budget // per_pair, cap))

    def _tile_products(self, x: np.ndarray, y: np.ndarray, n: int) -> _TileProducts | None:
        """The tile's x frames against the frames of every y token it pairs with, or None where
        that product would hold far more than the pairs need (sparse pairs: each pair alone)."""
        ux, uy = np.unique(x), np.unique(y)
        ly_all = self.tokens.length[uy]
        needed = n * int(self.tokens.length[y].sum())
        if len(ux) * n * int(ly_all.sum()) > self.PRODUCT_WASTE * needed:
            return None
        dim = self.tokens.frames.shape[1]
        col_start = np.concatenate([[0], np.cumsum(ly_all)[:-1]])
        cols = torch.from_numpy(np.repeat(self.tokens.start[uy] - col_start, ly_all) + np.arange(ly_all.sum()))
        rows = self.tokens.gather(ux, n).reshape(-1, dim)
        matrix = cross_products(rows, self.tokens.frames[cols.to(self.tokens.frames.device)], self.distance)
        return _TileProducts(matrix, ux, uy, col_start, self.distance)


@dataclass(frozen=True)
class _TileProducts:
    """One tile's frame products: rows are its x tokens' frames (n each), columns the frames of
    its y tokens back to back (from ``col_start``)."""

    matrix: torch.Tensor
    x_tokens: np.ndarray
    y_tokens: np.ndarray
    col_start: np.ndarray
    distance: str

    def pick(self, x: np.ndarray, y: np.ndarray, ly: np.ndarray, n: int, m: int) -> torch.Tensor:
        """Frame distances of the pairs (x[i], y[i]), P×n×m, y padded with its last frame."""
        dev = self.matrix.device
        row0 = torch.from_numpy(np.searchsorted(self.x_tokens, x) * n).to(dev)
        col0 = torch.from_numpy(self.col_start[np.searchsorted(self.y_tokens, y)]).to(dev)
        last = torch.from_numpy(ly - 1).to(dev)
        rows = row0.view(-1, 1) + torch.arange(n, device=dev).view(1, -1)
        cols = col0.view(-1, 1) + torch.minimum(torch.arange(m, device=dev).view(1, -1), last.view(-1, 1))
        return finish_distances(self.matrix[rows.unsqueeze(2), cols.unsqueeze(1)], self.distance)
