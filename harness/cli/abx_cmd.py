"""`harness abx`: ABX error rates of precomputed features (one ``.npy`` [frames, dim] per file).

    harness abx --features feats/ --item dev.item --frame-shift 0.02 [--speaker within|across]
        [--context within|any] [--distance angular|euclidean] [--librilight-compat] [--json]
        [--threads N] [--device cpu|cuda]

The stem of each ``.npy`` is the item file's ``#file``; frame i is centred at (i + 1/2) * shift.
Without ``--speaker``/``--context`` all four conditions are computed. ``--json`` prints a list of
``{"speaker", "context", "score"}`` with the error rate as a fraction.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError
from harness.evaluation.abx import CONTEXT_MODES, DISTANCES, SPEAKER_MODES, abx, read_item_file
from harness.models.model_io import model_device


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("abx", help="ABX phone discriminability of precomputed features")
    parser.add_argument("--features", required=True, type=Path, help="folder of <file>.npy, each [frames, dim]")
    parser.add_argument("--item", required=True, type=Path, help="libri-light .item file")
    parser.add_argument("--frame-shift", required=True, type=float, help="seconds between frames (e.g. 0.02)")
    parser.add_argument("--speaker", choices=SPEAKER_MODES, help="one speaker condition (default: both)")
    parser.add_argument("--context", choices=CONTEXT_MODES, help="one context condition (default: both)")
    parser.add_argument("--distance", choices=DISTANCES, default="angular")
    parser.add_argument(
        "--librilight-compat",
        action="store_true",
        help="libri-light's frame slicing (drops the last frame of each item) and feature normalisation",
    )
    parser.add_argument("--json", action="store_true", help='print [{"speaker", "context", "score"}, ...]')
    parser.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    parser.add_argument("--device", default="cpu", help="where distances and DTW run: cpu (default), cuda, cuda:1")
    parser.set_defaults(func=run)


class _NpyFolder:
    """``{file id: frames}`` read lazily from ``<folder>/<id>.npy``."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise HarnessError(f"feature folder {folder} does not exist; give the folder of .npy files.")
        self.paths = {p.stem: p for p in folder.rglob("*.npy")}
        if not self.paths:
            raise HarnessError(f"feature folder {folder} holds no .npy files; write one [frames, dim] array per file.")

    def __contains__(self, key: object) -> bool:
        return key in self.paths

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            _check_npy_size(self.paths[key])
            arr = np.load(self.paths[key], allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{self.paths[key]} is not a readable .npy array ({exc}).") from None
        if arr.ndim != 2:
            raise HarnessError(f"{self.paths[key]} must be a [frames, dim] array, got shape {arr.shape}.")
        return arr


def _check_npy_size(path: Path) -> None:
    """Refuse a .npy whose header claims more data than the file holds (before allocating it)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        needed = f.tell() + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    size = path.stat().st_size
    if dtype.hasobject or needed > size:
        raise HarnessError(f"{path} claims a {shape} {dtype} array ({needed:,} bytes) but holds {size:,} bytes; "
                           "write the features again.")



def run(args: argparse.Namespace) -> int:
    items = read_item_file(args.item)
    results = abx(
        _NpyFolder(args.features),
        items,
        args.frame_shift,
        speaker=[args.speaker] if args.speaker else SPEAKER_MODES,
        context=[args.context] if args.context else CONTEXT_MODES,
        distance=args.distance,
        librilight_compat=args.librilight_compat,
        threads=args.threads,
        device=model_device(args.device),
    )
    if results and results[0].left_out_note:
        logging.getLogger("harness.cli.abx").info("ABX: %s", results[0].left_out_note)
    if args.json:
        rows = [{"speaker": r.speaker, "context": r.context, "score": r.score if math.isfinite(r.score) else None}
                for r in results]  # no score (too few items in a condition) is null: NaN is not JSON
        print(json.dumps(rows, allow_nan=False))
        return 0
    print(f"{'speaker':<8} {'context':<8} {'ABX error %':>11}")
    for r in results:
        print(f"{r.speaker:<8} {r.context:<8} {100 * r.score:11.2f}")
    return 0
