"""The DTW distances of the token pairs an ABX score needs.

:class:`PairAligner` aligns given pairs. They are gathered in tiles: tokens of one length as rows
(x) against the frames of every token they pair with (y). A tile's frame distances are one matrix
product, from which each pair's block is picked; its pairs are then aligned in chunks sorted by y
length (little padding). Tiles and chunks are cut by sizes alone, never by the thread count, so the
scores do not depend on the cores used. :class:`PairTable` aligns every needed pair once up front;
:class:`BlockDistances` aligns one block's pairs when asked (memory bounded, for large sets).
"""

from __future__ import annotations

from collections.abc import Iterator
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
        dev = self.frames.device
        start = torch.from_numpy(self.start[which]).to(dev)
        last = torch.from_numpy(self.length[which] - 1).to(dev)
        offsets = torch.minimum(torch.arange(width, device=dev).view(1, -1), last.view(-1, 1))
        return self.frames[start.view(-1, 1) + offsets]


class PairAligner:
    """DTW distances of given token pairs, both orientations from one alignment each."""

    PAIRS_PER_CHUNK = 16384
    PRODUCT_WASTE = 4  # a tile's product may hold this many times the frame blocks its pairs need
    SLICE_PAIRS = 1 << 22  # pairs aligned at once by :meth:`matrix`

    def __init__(self, tokens: TokenFrames, distance: str, exact: bool, budget: int, threads: int = 1):
        self.tokens, self.distance, self.exact, self.budget, self.threads = tokens, distance, exact, budget, threads
        # each pair aligned with the shorter token as rows (ties: the earlier one), so a tile of
        # rows meets only the tokens after it in (length, index) order: half of all products
        n_tok = len(tokens.start)
        self._rank = np.empty(n_tok, dtype=np.int64)
        self._rank[np.lexsort((np.arange(n_tok), tokens.length))] = np.arange(n_tok)

    def align(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DTW(x[i], y[i]) with x's frames as rows, and with y's frames as rows (x[i] != y[i])."""
        swapped = self._rank[x] > self._rank[y]
        rows, cols = np.where(swapped, y, x), np.where(swapped, x, y)
        fwd = np.empty(len(x), dtype=np.float32)
        bwd = np.empty(len(x), dtype=np.float32)

        def run(pairs: np.ndarray) -> None:
            for at, cost, len_rc, len_cr in self._align_tile(rows[pairs], cols[pairs]):
                # the caller's orientation (x as rows) is the transposed one where swapped
                flip = torch.from_numpy(swapped[pairs[at]]).to(cost.device)
                fwd[pairs[at]] = (cost / torch.where(flip, len_cr, len_rc)).cpu().numpy()
                bwd[pairs[at]] = (cost / torch.where(flip, len_rc, len_cr)).cpu().numpy()

        tiles = self._tiles(rows, cols)
        if self.threads > 1 and self.tokens.frames.device.type == "cpu":
            # one tile per thread at a time, each on one intra-op thread: torch releases the GIL
            # inside every operation, and the many small operations of a DTW run best unthreaded
            with torch_threads(1), ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(run, tiles))
        else:
            for tile in tiles:
                run(tile)
        return fwd, bwd

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """DTW(a[i], b[j]) (a's frames as rows) as a len(a)×len(b) matrix; 0 where a[i] == b[j].
        Computed in slices of at most :attr:`SLICE_PAIRS` pairs; within a slice every unordered
        pair is aligned once."""
        if not len(a) or not len(b):
            return np.zeros((len(a), len(b)), dtype=np.float32)
        ua, ia = np.unique(a, return_inverse=True)
        ub, ib = np.unique(b, return_inverse=True)
        step = max(1, self.SLICE_PAIRS // max(1, len(ub)))
        out = np.concatenate([self._product(ua[i : i + step], ub) for i in range(0, len(ua), step)])
        return out[np.ix_(ia.reshape(-1), ib.reshape(-1))]

    def both(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For disjoint token sets: DTW(a[i], b[j]) with a's frames as rows and with b's frames as
        rows, two len(a)×len(b) matrices from one alignment per pair."""
        xx, yy = (g.reshape(-1) for g in np.meshgrid(a, b, indexing="ij"))
        fwd, bwd = self.align(xx, yy)
        return fwd.reshape(len(a), len(b)), bwd.reshape(len(a), len(b))

    def _product(self, ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
        """DTW(ua[i], ub[j]) for sorted distinct token ids: each unordered pair aligned once."""
        if not len(np.intersect1d(ua, ub, assume_unique=True)):  # disjoint: every pair is distinct
            return self.both(ua, ub)[0]
        n_tok = len(self.tokens.start)
        xx, yy = (g.reshape(-1) for g in np.meshgrid(ua, ub, indexing="ij"))
        off = xx != yy
        lo, hi = np.minimum(xx[off], yy[off]), np.maximum(xx[off], yy[off])
        keys, inv = np.unique(lo * n_tok + hi, return_inverse=True)
        fwd, bwd = self.align(keys // n_tok, keys % n_tok)
        out = np.zeros(len(xx), dtype=np.float32)
        out[off] = np.where(xx[off] < yy[off], fwd[inv], bwd[inv])
        return out.reshape(len(ua), len(ub))

    def _tiles(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Pair indices per tile: x tokens of one length, as many as keep the tile's product within
        a quarter of the budget, their pairs sorted by y length."""
        if not len(x):
            return []
        length = self.tokens.length
        ly = length[y]
        # token ids are few: their sets come from counts, not from sorting the pairs
        y_frames = int(length[np.flatnonzero(np.bincount(y, minlength=len(length)))].sum())
        # x tokens in (length, index) order, cut into runs of one length sized for the product
        x_tokens = np.flatnonzero(np.bincount(x, minlength=len(length)))
        x_tokens = x_tokens[np.lexsort((x_tokens, length[x_tokens]))]
        rows = length[x_tokens]
        run_start = np.concatenate([[0], np.flatnonzero(np.diff(rows)) + 1])
        run_of = np.repeat(np.arange(len(run_start)), np.diff(np.append(run_start, len(rows))))
        per_tile = np.maximum(1, (self.budget // 4) // (rows * y_frames))  # x tokens per tile
        within = (np.arange(len(rows)) - run_start[run_of]) // per_tile
        # tiles numbered in order (by run, then by tile in it); pairs sorted by (tile, y length) with one
        # stable sort of a combined key
        tile_ids, tile_rank = np.unique(run_of * (len(rows) + 1) + within, return_inverse=True)
        tile_of = np.zeros(len(length), dtype=np.int64)
        tile_of[x_tokens] = tile_rank.reshape(-1)
        which = tile_of[x]
        order = np.argsort(which * (int(ly.max()) + 1) + ly, kind="stable")
        return np.split(order, np.cumsum(np.bincount(which, minlength=len(tile_ids)))[:-1])

    def _align_tile(
        self, x: np.ndarray, y: np.ndarray
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per chunk of the tile's pairs (x of one length, y lengths ascending): its slice, the DTW
        costs and the path lengths with x as rows and with y as rows."""
        lx, ly = self.tokens.length[x], self.tokens.length[y]
        n = int(lx[0])
        products = None if self.exact else self._tile_products(x, y, n)
        size = self._chunk_size(n, int(ly[-1]))
        for lo in range(0, len(x), size):
            at = slice(lo, min(lo + size, len(x)))
            m = int(ly[at.stop - 1])  # y lengths ascend: the chunk's last pair is its widest
            if products is None:
                fx, fy = self.tokens.gather(x[at], n), self.tokens.gather(y[at], m)
                dist = frame_distances(fx, fy, self.distance, self.exact)
            else:
                dist = products.pick(x[at], y[at], ly[at], n, m)
            yield (at, *dtw_both(dist, torch.from_numpy(lx[at]), torch.from_numpy(ly[at])))

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


class PairTable:
    """Every pair the blocks need, each unordered pair aligned once up front: a dense matrix for
    small sets, sorted keys otherwise."""

    DENSE_MAX = 6000

    def __init__(self, aligner: PairAligner, blocks: list[tuple[np.ndarray, np.ndarray]]):
        n_tok = len(aligner.tokens.start)
        self.n_tokens = n_tok
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
        fwd, bwd = aligner.align(x, y)
        self.dense: np.ndarray | None = None
        if n_tok <= self.DENSE_MAX:
            self.dense = np.zeros((n_tok, n_tok), dtype=np.float32)
            self.dense[x, y] = fwd
            self.dense[y, x] = bwd
        else:
            self.keys, self.fwd, self.bwd = keys, fwd, bwd

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """DTW(x[i], y[j]) (x's frames as rows) as a len(x)×len(y) matrix; 0 where x[i] == y[j]."""
        if self.dense is not None:
            return self.dense[np.ix_(x, y)]
        xx, yy = np.broadcast_arrays(x[:, None], y[None, :])
        lo, hi = np.minimum(xx, yy), np.maximum(xx, yy)
        pos = np.searchsorted(self.keys, lo * self.n_tokens + hi).clip(0, max(len(self.keys) - 1, 0))
        out = np.where(xx <= yy, self.fwd[pos], self.bwd[pos]) if len(self.keys) else np.zeros(xx.shape)
        return np.where(xx == yy, 0.0, out).astype(np.float32)


class BlockDistances:
    """The pairs of one block at a time, aligned when asked for (memory bounded by the largest
    block; a pair needed by several blocks is aligned again for each, except across speakers in any
    context, where each pair of speakers is aligned once for both: see ``score._across_any``)."""

    def __init__(self, aligner: PairAligner):
        self.aligner = aligner

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """As :meth:`PairTable.lookup`."""
        return self.aligner.matrix(x, y)


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
