"""Frame labels from time alignments: which labelled interval each frame of a model falls in.

Frame ``i`` of a model with frame shift ``s`` is labelled with the entry whose ``[start, end)``
interval contains its centre ``(i + 0.5)·s``; frames outside every interval (past the last phone,
in a gap) get :data:`IGNORE_LABEL`, the ``ignore_index`` of a cross-entropy loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the label of a frame no interval covers (PyTorch's default ``ignore_index``)
IGNORE_LABEL = -100


def frame_labels(phones: list[list[Any]], n_frames: int, frame_shift: float, index: dict[str, int]) -> np.ndarray:
    """Label index per frame (``IGNORE_LABEL`` outside the alignment) for ``[[label, start, end], ...]``
    sorted by time; labels missing from ``index`` are ignored too."""
    out = np.full(n_frames, IGNORE_LABEL, dtype=np.int64)
    if not phones or n_frames == 0:
        return out
    starts = np.array([float(p[1]) for p in phones])
    ends = np.array([float(p[2]) for p in phones])
    ids = np.array([index.get(str(p[0]), IGNORE_LABEL) for p in phones], dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) * frame_shift
    k = np.searchsorted(ends, centres, side="right")
    inside = (k < len(phones)) & (centres >= starts[np.minimum(k, len(phones) - 1)])
    out[inside] = ids[k[inside]]
    return out
