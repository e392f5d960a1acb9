"""ABX phone discriminability on frame features, batched on torch.

The maths (libri-light's ABX, as revised in ``zerospeech-libriabx2`` and described by fastabx):

- An *item file* lists phone tokens: ``#file onset offset #phone prev-phone next-phone speaker``
  (first line a header). A token's frames are those whose centre ``(i + 1/2) * shift`` lies in
  ``[onset, offset]`` (a centre on a boundary inside, decided exactly as fastabx does). libri-light
  slices ``[ceil(onset/shift - 1/2), floor(offset/shift - 1/2))`` in float arithmetic, which drops
  the last of those frames; ``librilight_compat=True`` reproduces that (and its feature
  normalisation, below) so scores can be compared with published ones.
- The distance between two tokens is the DTW cost between their frame sequences (frame distance
  ``angular``: ``arccos(cos) / pi``, or ``euclidean``) divided by the length of the alignment path
  (the path found by backtracking with the preference diagonal, then left, then up).
- A *cell* fixes the phones a != b, the speaker of A and B, the context (within-context: the
  previous and next phones) and, across speakers, the speaker of X. Its score is the share of
  triplets (a, b, x), x a token of phone a (x != a within speaker; from the X speaker across),
  where d(a, x) < d(b, x), ties counting one half; its error is one minus that.
- The condition's error: mean over contexts (and X speakers), then over speakers, then over the
  (ordered) phone pairs. Per-pair errors are returned for confidence intervals.

libri-light normalises every frame to unit length and appends one coordinate (1e-12, or -2e12 for a
null frame so that it lies at the largest angular distance from everything else) whatever the
distance; the compatibility mode does the same, and also accumulates frame dot products in the same
order (elementwise products summed over the feature axis) so that DTW costs agree to the bit.
Otherwise angular distances use a unit-normalised matrix product (null frames: as above) and
euclidean distances use the raw features.

Speed: all token pairs any requested condition needs are collected first and deduplicated, each
unordered pair to be aligned once, the shorter token as rows. Tokens of one length form a tile whose
frames meet the frames of every token they pair with in one matrix product (where that product
would be mostly waste, as for sparse within-context pairs, each pair's distances are computed from
its own frames); the pairs' blocks are picked from it and aligned in chunks by one vectorised DTW
over anti-diagonals (a Python loop over the diagonal index only). The triplet counts of a block of
tokens come from sorted searches, so no Python loop runs per pair or per triplet. Distances and DTW
run on the device given (``device``: a GPU when the stage has one) or, on the CPU, on ``threads``
worker threads at once (every core by default), each taking whole tiles on one intra-op thread.
Tiles and chunks are cut by size alone, so the scores do not depend on the thread count; across
devices, and against each pair computed alone, they agree to 1e-6. When the pairs would take more
than a quarter of the available memory (real-size item files with the any-context conditions), they
are aligned block by block as each condition needs them instead (across speakers in any context,
one pair of speakers at a time, each pair aligned once for both): memory bounded by the largest
block, at about 1.6 times the time. Unlike libri-light's defaults,
nothing is subsampled (its ``max_size_group`` and ``max_x_across`` trade exactness for time).

Modules: :mod:`.items` (item files), :mod:`.dtw` (frame distances, DTW), :mod:`.pair_table` (the
pairs' DTW distances, in tiles, all at once or block by block), :mod:`.score` (the conditions' error rates).
"""

from harness.evaluation.abx.dtw import dtw_batch, dtw_both, frame_distances, librilight_normalize
from harness.evaluation.abx.items import Item, frame_range, read_item_file, write_item_file
from harness.evaluation.abx.score import CONTEXT_MODES, DISTANCES, SPEAKER_MODES, ABXScore, abx

__all__ = [
    "CONTEXT_MODES",
    "DISTANCES",
    "SPEAKER_MODES",
    "ABXScore",
    "Item",
    "abx",
    "dtw_batch",
    "dtw_both",
    "frame_distances",
    "frame_range",
    "librilight_normalize",
    "read_item_file",
    "write_item_file",
]
