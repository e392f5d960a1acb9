"""ABX error rates: the tokens of an item file, the DTW distances of the pairs the conditions need,
and the triplet counts of each cell averaged into one score per condition."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.core.errors import HarnessError
from harness.core.threads import available_cores, torch_threads
from harness.evaluation.abx.dtw import librilight_normalize
from harness.evaluation.abx.items import Item, frame_range
from harness.evaluation.abx.pair_table import BlockDistances, PairAligner, PairTable, TokenFrames

log = logging.getLogger("harness.evaluation.abx")

SPEAKER_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")
DISTANCES = ("angular", "euclidean")
#: token pairs (counted per block, repeats included) aligned all at once up front, beyond which they
#: are aligned block by block as conditions need them (memory bounded, about 1.6x slower:
#: ``benchmarks/bench_abx_blocks.py``); None: as many as take at most a quarter of the memory
#: available, at :data:`BYTES_PER_PAIR`
TABLE_MAX_PAIRS: int | None = None
BYTES_PER_PAIR = 48  # measured about 41 at the peak of the sorted-key table


@dataclass(frozen=True)
class _Tokens(TokenFrames):
    """The kept items' frames (normalised as the distance needs) with their labels as ids."""

    phone: np.ndarray  # ids
    speaker: np.ndarray
    context: np.ndarray
    phones: list[str]
    speakers: list[str]
    contexts: list[str]


def _index(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names: dict[str, int] = {}
    ids = np.array([names.setdefault(v, len(names)) for v in values], dtype=np.int64)
    return ids, list(names)


def _build_tokens(
    features: Mapping[str, torch.Tensor | np.ndarray],
    items: Sequence[Item],
    frame_shift: float,
    distance: str,
    librilight_compat: bool,
    device: torch.device,
) -> _Tokens:
    missing = sorted({it.file for it in items if it.file not in features})
    if missing:
        raise HarnessError(
            f"{len(missing)} file(s) of the item file have no features (e.g. {missing[0]!r}); "
            "extract features for every file the item file lists."
        )
    chunks, starts, lengths, kept = [], [], [], []
    total = 0
    prepared: dict[str, torch.Tensor] = {}
    for it in items:
        feats = prepared.get(it.file)
        if feats is None:
            raw = torch.as_tensor(np.asarray(features[it.file]), dtype=torch.float32)
            if raw.dim() != 2:
                raise HarnessError(f"features of {it.file!r} must be a [frames, dim] matrix, got {tuple(raw.shape)}.")
            # angular: unit rows with libri-light's extra coordinate for null frames; euclidean on
            # raw features, or normalised as libri-light does in the compatibility mode
            feats = librilight_normalize(raw) if (librilight_compat or distance == "angular") else raw
            prepared[it.file] = feats
        start, end = frame_range(it.onset, it.offset, feats.shape[0], frame_shift, librilight_compat)
        if start >= feats.shape[0] or end <= start:
            continue
        chunks.append(feats[start:end])
        starts.append(total)
        lengths.append(end - start)
        total += end - start
        kept.append(it)
    if len(kept) < len(items):
        # said once by the caller (a stage scores the same items for every layer): see ABXScore.left_out
        log.debug("ABX: %d of %d items have no frame and are left out", len(items) - len(kept), len(items))
    if not kept:
        raise HarnessError("no item of the item file covers a frame; check --frame-shift and the features.")
    phone, phones = _index([it.phone for it in kept])
    speaker, speakers = _index([it.speaker for it in kept])
    context, contexts = _index([it.context for it in kept])
    return _Tokens(
        torch.cat(chunks).to(device),
        np.array(starts),
        np.array(lengths),
        phone,
        speaker,
        context,
        phones,
        speakers,
        contexts,
    )


def _counts(va: torch.Tensor, vb: torch.Tensor) -> torch.Tensor:
    """For each row r and column j: #{k: va[r,k] < vb[r,j]} + 1/2 #{k: va[r,k] == vb[r,j]}.

    ``va`` rows are padded with +inf (never less than or equal to a finite ``vb``)."""
    srt, _ = torch.sort(va, dim=1)
    left = torch.searchsorted(srt, vb, right=False)
    right = torch.searchsorted(srt, vb, right=True)
    return left.double() + 0.5 * (right - left).double()


def _one_hot(ids: np.ndarray, n: int) -> torch.Tensor:
    out = torch.zeros((len(ids), n), dtype=torch.float64)
    out[torch.arange(len(ids)), torch.from_numpy(ids)] = 1.0
    return out


def _block_within(members: np.ndarray, tokens: _Tokens, table: PairTable | BlockDistances):
    """Cells of one within-speaker block (one speaker, one context or all): (a, b, num, den)."""
    ph = tokens.phone[members]
    uniq, local = np.unique(ph, return_inverse=True)
    counts = np.bincount(local)
    if len(uniq) < 2 or counts.max() < 2:
        return None
    n = len(members)
    dist = torch.from_numpy(table.lookup(members, members))  # row = first DTW argument
    # same-phone pairs are aligned once, earlier token first (libri-light's symmetric groups)
    upper = torch.triu(dist, diagonal=1)
    sym = upper + upper.T
    same = torch.from_numpy(local[:, None] == local[None, :])
    eye = torch.eye(n, dtype=torch.bool)
    va = torch.where(same & ~eye, sym, torch.tensor(float("inf")))
    s = _counts(va, dist)
    s = torch.where(same, torch.zeros((), dtype=torch.float64), s)
    e = _one_hot(local, len(uniq))
    num = e.T @ s @ e  # [a, b]
    cnt = torch.from_numpy(counts).double()
    den = (cnt * (cnt - 1)).view(-1, 1) * cnt.view(1, -1)
    ok = (den > 0) & ~torch.eye(len(uniq), dtype=torch.bool)
    a, b = torch.nonzero(ok, as_tuple=True)
    return uniq[a.numpy()], uniq[b.numpy()], num[a, b].numpy(), den[a, b].numpy(), None


def _block_across(
    members: np.ndarray, others: np.ndarray, tokens: _Tokens, distances: Callable[[np.ndarray], np.ndarray]
):
    """Cells of one across-speaker block: A, B from ``members`` (one speaker), X from ``others``.

    ``distances(keep)``: DTW(others[keep][i], members[j]) (X's frames as rows), for the X tokens
    whose phone the block has. Rows are counted one by one, so X may come in parts (by speaker)."""
    ph = tokens.phone[members]
    uniq, local = np.unique(ph, return_inverse=True)
    if len(uniq) < 2:
        return None
    pos = {int(p): i for i, p in enumerate(uniq)}
    keep = np.isin(tokens.phone[others], uniq)
    others = others[keep]
    if len(others) == 0:
        return None
    xl = np.array([pos[int(p)] for p in tokens.phone[others]])
    dist = torch.from_numpy(distances(keep))  # [X, Y]
    same = torch.from_numpy(xl[:, None] == local[None, :])
    va = torch.where(same, dist, torch.tensor(float("inf")))
    s = _counts(va, dist)
    s = torch.where(same, torch.zeros((), dtype=torch.float64), s)
    # rows grouped by (X speaker, phone a)
    group = tokens.speaker[others] * len(uniq) + xl
    gid, ginv = np.unique(group, return_inverse=True)
    gx = _one_hot(ginv, len(gid))
    num = gx.T @ s @ _one_hot(local, len(uniq))  # [(sx, a), b]
    cnt_y = torch.from_numpy(np.bincount(local, minlength=len(uniq))).double()
    cnt_x = torch.from_numpy(np.bincount(ginv)).double()
    a_of = torch.from_numpy(gid % len(uniq))
    den = (cnt_x * cnt_y[a_of]).view(-1, 1) * cnt_y.view(1, -1)
    ok = a_of.view(-1, 1) != torch.arange(len(uniq)).view(1, -1)
    g, b = torch.nonzero(ok, as_tuple=True)
    return (
        uniq[(gid[g.numpy()] % len(uniq))],
        uniq[b.numpy()],
        num[g, b].numpy(),
        den[g, b].numpy(),
        gid[g.numpy()] // len(uniq),
    )


@dataclass
class ABXScore:
    """One condition's error rate (a fraction) with its per-phone-pair errors."""

    speaker: str
    context: str
    score: float
    pairs: list[tuple[str, str, float]] = field(default_factory=list)
    n_cells: int = 0
    n_items: int = 0  # items of the item file
    left_out: int = 0  # of them, those that cover no frame

    @property
    def left_out_note(self) -> str | None:
        """``3 of 897 items have no frame and are left out``, or None when every item counted."""
        return f"{self.left_out} of {self.n_items} items have no frame and are left out" if self.left_out else None

    @property
    def name(self) -> str:
        return f"{self.speaker}_speaker_{self.context}_context"


def _blocks(tokens: _Tokens, context: str) -> dict[tuple[int, int], np.ndarray]:
    """Token indices per (context id or -1, speaker id), in item order."""
    ctx = tokens.context if context == "within" else np.full(len(tokens.start), -1)
    key = ctx * (len(tokens.speakers) + 1) + tokens.speaker
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    out = {}
    for grp in np.split(order, bounds):
        out[(int(ctx[grp[0]]), int(tokens.speaker[grp[0]]))] = grp
    return out


def _needed_blocks(tokens: _Tokens, speaker: str, context: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token sets (rows, cols) whose every pair the condition aligns."""
    blocks = _blocks(tokens, context)
    out = []
    if speaker == "within":
        return [(m, m) for m in blocks.values() if len(m) > 1]
    by_ctx: dict[int, list[np.ndarray]] = {}
    for (c, _), members in blocks.items():
        by_ctx.setdefault(c, []).append(members)
    for (c, s), members in blocks.items():
        others = [m for m in by_ctx[c] if tokens.speaker[m[0]] != s]
        if not others or len(np.unique(tokens.phone[members])) < 2:
            continue
        other = np.concatenate(others)
        other = other[np.isin(tokens.phone[other], tokens.phone[members])]
        if len(other):
            out.append((other, members))
    return out


def _condition(tokens: _Tokens, table: PairTable | BlockDistances, speaker: str, context: str) -> ABXScore:
    blocks = _blocks(tokens, context)
    cells = []  # (s, a, b, inner, error)

    def add(c: int, s: int, res: tuple | None) -> None:
        if res is None:
            return
        a, b, num, den, sx = res
        inner = np.full(len(a), c) if sx is None else c * (len(tokens.speakers) + 1) + sx
        cells.append(np.stack([np.full(len(a), s), a, b, inner, 1.0 - num / den], axis=1))

    if speaker == "across" and context == "any" and isinstance(table, BlockDistances):
        for s, res in _across_any(blocks, tokens, table):
            add(-1, s, res)
    else:
        by_ctx: dict[int, list[np.ndarray]] = {}
        for (c, _), members in blocks.items():
            by_ctx.setdefault(c, []).append(members)
        for (c, s), members in blocks.items():
            phones = tokens.phone[members]
            if (phones == phones[0]).all():  # one phone (most blocks within one context): no cell
                continue
            if speaker == "within":
                add(c, s, _block_within(members, tokens, table))
                continue
            parts = [m for m in by_ctx[c] if tokens.speaker[m[0]] != s]
            others = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            add(c, s, _block_across(members, others, tokens, _looked_up(table, others, members)))
    if not cells:
        return ABXScore(speaker, context, float("nan"))
    table_ = np.concatenate(cells)
    # mean over the innermost key (context, and the X speaker across), then speakers, then pairs
    spk_pair = _group_mean(table_[:, [0, 1, 2]], table_[:, 4])
    pair = _group_mean(spk_pair[0][:, [1, 2]], spk_pair[1])
    errors = pair[1]
    pairs = [
        (tokens.phones[int(a)], tokens.phones[int(b)], float(e)) for (a, b), e in zip(pair[0], errors, strict=True)
    ]
    return ABXScore(speaker, context, float(errors.mean()), pairs, len(table_))


def _looked_up(table: PairTable | BlockDistances, others: np.ndarray, members: np.ndarray):
    """``distances`` for :func:`_block_across`: the rows of ``others`` it keeps against ``members``."""
    return lambda keep: table.lookup(others[keep], members)


def _across_any(blocks: dict[tuple[int, int], np.ndarray], tokens: _Tokens, table: BlockDistances):
    """Across speakers in any context, one pair of speakers at a time: their tokens are aligned once
    and serve both blocks (X from either speaker). Yields (block speaker, its cells with X from one
    other speaker)."""
    members = {s: m for (_, s), m in blocks.items()}
    for s, t in itertools.combinations(sorted(members), 2):
        s_rows, t_rows = table.aligner.both(members[s], members[t])  # [s tokens, t tokens]
        yield t, _block_across(members[t], members[s], tokens, lambda keep, d=s_rows: d[keep])
        yield s, _block_across(members[s], members[t], tokens, lambda keep, d=t_rows.T: d[keep])


def _available_memory() -> int:
    """Bytes of memory available now (Linux's MemAvailable; 8 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def _group_mean(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``keys`` (integers held as floats) in lexicographic order, and the mean of
    ``values`` over each. The rows are grouped by one integer code each (column by column in mixed
    radix, so codes sort as the rows do): a row-wise ``np.unique(axis=0)`` took 7.6 of the 19.3 s the
    demo's six ABX stages spent scoring conditions on 2 cores."""
    ints = keys.astype(np.int64)
    low = ints.min(axis=0, initial=0)
    span = ints.max(axis=0, initial=0) - low + 1
    if np.prod(span.astype(float)) < 2.0**62:
        code = np.zeros(len(ints), dtype=np.int64)
        for column in range(ints.shape[1]):
            code = code * span[column] + (ints[:, column] - low[column])
        _, first, inv = np.unique(code, return_index=True, return_inverse=True)
        uniq = keys[first]
    else:  # too many combinations for one integer: compare the rows themselves
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    sums = np.bincount(inv, weights=values)
    return uniq, sums / np.bincount(inv)


def abx(
    features: Mapping[str, torch.Tensor | np.ndarray],
    items: Sequence[Item],
    frame_shift: float,
    speaker: Sequence[str] = SPEAKER_MODES,
    context: Sequence[str] = CONTEXT_MODES,
    distance: str = "angular",
    librilight_compat: bool = False,
    budget: int | None = None,
    threads: int | None = None,
    device: torch.device | str = "cpu",
) -> list[ABXScore]:
    """ABX error rates (fractions) of ``features`` (file id -> frames T×D) on ``items``.

    One result per requested (speaker, context) condition, in the order speaker × context.
    ``device``: where frame distances and DTW run (the scores agree to 1e-6 on every device).
    ``threads``: on the CPU, how many tiles of pairs are aligned at once, each on one intra-op
    thread (None: every core this process may use); the scores do not depend on it. ``budget``
    bounds the floats of one DTW chunk, and four times those of a tile's product (memory; None:
    2**24 on the CPU, 2**27 on an accelerator).
    """
    for value, allowed, what in ((speaker, SPEAKER_MODES, "speaker"), (context, CONTEXT_MODES, "context")):
        bad = [v for v in value if v not in allowed]
        if bad or not value:
            raise HarnessError(f"ABX {what} mode {bad[0] if bad else '(none)'!r} is not one of {', '.join(allowed)}.")
    if distance not in DISTANCES:
        raise HarnessError(f"ABX distance {distance!r} is not one of {', '.join(DISTANCES)}.")
    if not frame_shift > 0:
        raise HarnessError(f"the frame shift must be a positive number of seconds (got {frame_shift}).")
    device = torch.device(device)
    threads = available_cores() if threads is None else threads
    if threads < 1:
        raise HarnessError(f"ABX threads must be at least 1 (got {threads}).")
    if budget is None:
        budget = 1 << 24 if device.type == "cpu" else 1 << 27
    with torch.no_grad(), torch_threads(1):
        tokens = _build_tokens(features, items, frame_shift, distance, librilight_compat, device)
        conditions = [(s, c) for s in speaker for c in context]
        # the pairs of the any-context conditions include those of the within-context ones
        pair_context = "any" if "any" in context else "within"
        blocks = [b for s in speaker for b in _needed_blocks(tokens, s, pair_context)]
        aligner = PairAligner(tokens, distance, librilight_compat, budget, threads)
        n_pairs = sum(len(rows) * len(cols) for rows, cols in blocks)
        max_pairs = TABLE_MAX_PAIRS if TABLE_MAX_PAIRS is not None else _available_memory() // (4 * BYTES_PER_PAIR)
        if n_pairs <= max_pairs:
            table: PairTable | BlockDistances = PairTable(aligner, blocks)
        else:
            log.info(
                "ABX: %.2g token pairs over %d tokens, more than a quarter of the free memory holds; "
                "aligning them block by block", n_pairs, len(tokens.start)
            )
            table = BlockDistances(aligner)
        scores = [_condition(tokens, table, s, c) for s, c in conditions]
    for result in scores:
        result.n_items, result.left_out = len(items), len(items) - len(tokens.start)
    return scores
