"""Item files: the phone tokens of an ABX set, and the frames each token covers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError


@dataclass(frozen=True)
class Item:
    """One phone token of an item file."""

    file: str
    onset: float
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str

    @property
    def context(self) -> str:
        return f"{self.prev}+{self.next}"


def read_item_file(path: Path) -> list[Item]:
    """Parse a libri-light item file (the first line is a header)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"item file {path} does not exist; give the .item file of the ABX set.")
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise HarnessError(f"item file {path} is not UTF-8 text (byte {exc.start}); give the libri-light .item "
                           "text file of the ABX set.") from None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 7:
            raise HarnessError(
                f"{path}, line {number}: expected 7 columns (#file onset offset #phone prev next speaker), "
                f"found {len(cols)}; fix the item file."
            )
        try:
            onset, offset = float(cols[1]), float(cols[2])
        except ValueError:
            raise HarnessError(f"{path}, line {number}: onset and offset must be numbers of seconds.") from None
        items.append(Item(cols[0], onset, offset, cols[3], cols[4], cols[5], cols[6]))
    if not items:
        raise HarnessError(f"item file {path} lists no items; it needs a header line and one line per token.")
    return items


def write_item_file(path: Path, items: Iterable[Item]) -> None:
    """Write ``items`` in libri-light's format (with its header line)."""
    lines = ["#file onset offset #phone prev-phone next-phone speaker"]
    for it in items:
        lines.append(f"{it.file} {it.onset:.4f} {it.offset:.4f} {it.phone} {it.prev} {it.next} {it.speaker}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def frame_range(
    onset: float, offset: float, n_frames: int, frame_shift: float, librilight_compat: bool = False
) -> tuple[int, int]:
    """``[start, end)`` of the frames whose centre ``(i + 1/2) * shift`` lies in ``[onset, offset]``.

    A centre exactly on a boundary is inside, as fastabx decides it in decimal arithmetic: item files
    on a 10 ms grid put every other boundary on a 20 ms frame's centre, where the float value of
    ``t / shift − 1/2`` falls either side of the integer. ``librilight_compat``: libri-light's float
    arithmetic (``step = 1 / shift``) and its end one frame earlier (its slice drops the last frame),
    so frame boundaries match libri-light's exactly.
    """
    step = 1 / frame_shift
    if librilight_compat:
        start, last = int(math.ceil(step * onset - 0.5)), int(math.floor(step * offset - 0.5))
    else:
        start, last = _whole(step * onset - 0.5, math.ceil), _whole(step * offset - 0.5, math.floor)
    return max(0, start), min(n_frames, last if librilight_compat else last + 1)


def _whole(value: float, rounding: Callable[[float], int]) -> int:
    """``rounding(value)``, a value within 1e-6 of an integer (20 ns at 20 ms frames) being that integer."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) < 1e-6 else int(rounding(value))
