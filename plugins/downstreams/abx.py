"""Downstream ``abx``: ABX phone discriminability of a layer's frames (no head, nothing trained).

The corpus names libri-light item files (``meta["abx_items"]``: ``{"dev": ..., "test": ...}``,
``#file`` = utterance id). Frames come from the shared feature cache (the float16 hidden states)
or, past its budget, from the upstream directly. Error rates are in percent, lower is better;
conditions: within/across speaker × within/any context, angular distance by default (see
:mod:`harness.evaluation.abx` for the maths and ``librilight_compat``).

``layer``: a hidden-state index (negative counts from the end), or ``all``: every layer is scored
on the dev item file and, per condition, the best dev layer is reported on test (metrics
``<speaker>_speaker_<context>_context``); every layer's dev error is kept in ``extra``. Per-item
results are per phone pair (``[error, 1]`` per condition), for confidence intervals.
``max_files`` scores only the first files (sorted ids) of each item file; ``protocol: embedded``
(default) takes 24 so that an evaluation stays within seconds on a CPU, ``full`` takes them all.
Distances and DTW run on the stage's device, or on the stage's CPU threads (every core unless the
executor shares them out); the scores are the same on every path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from harness import hookimpl
from harness.api import (
    EXECUTION_ONLY,
    CorpusError,
    DownstreamPlugin,
    EvalResult,
    ExtractPrecision,
    PluginParams,
    PreparedCorpus,
    StageContext,
)

if TYPE_CHECKING:  # these load torch: the functions that run ABX import them, registration does not
    from harness.api import ABXScore, Item, UpstreamModel

#: files per item file scored by ``protocol: embedded`` (the across-speaker any-context condition
#: aligns every pair of tokens, so time grows with the square of the item count)
EMBEDDED_FILES = 24

Condition = Literal["within", "across"]
Context = Literal["within", "any"]


class ABXParams(PluginParams):
    layer: int | Literal["all"] = "all"
    speaker: list[Condition] = ["within", "across"]
    context: list[Context] = ["within", "any"]
    distance: Literal["angular", "euclidean"] = "angular"
    librilight_compat: bool = False
    protocol: Literal["embedded", "full"] = "embedded"
    max_files: int | None = None
    max_frame_gb: Annotated[float, EXECUTION_ONLY] = Field(
        4.0, gt=0, allow_inf_nan=False, description="frame cache budget; past it the upstream runs on the fly")
    extract_precision: ExtractPrecision = "fp32"

    def files_cap(self) -> int | None:
        """``max_files`` if set; else 24 files per item file for ``embedded``, all for ``full``."""
        if self.max_files is not None:
            return self.max_files
        return EMBEDDED_FILES if self.protocol == "embedded" else None


class ABXDownstream(DownstreamPlugin[ABXParams]):
    name = "abx"
    version = "2"
    summary = "ABX phone discriminability of a layer's frames (within/across speaker, within/any context)"
    order = 90
    label_fields = ("phones",)
    frame_cache = True  # reads the float16 frame cache (``harness plan`` projects its size)

    def evaluate(
        self, upstream: UpstreamModel, corpus: PreparedCorpus, params: ABXParams, ctx: StageContext
    ) -> EvalResult:
        import torch

        from harness.api import abx, check_layer, frame_cache, utterance_states

        files = corpus.meta.get("abx_items") or {}
        if "test" not in files:
            raise CorpusError(f"corpus {corpus.name!r} has no ABX item files (meta 'abx_items'); pick one that has.")
        n_layers = upstream.num_hidden_states
        check_layer(params.layer, upstream, "abx")
        cache = frame_cache(upstream, ctx, params.max_frame_gb, params.extract_precision)

        notes: dict[str, str] = {}  # item file role -> its left-out note, said once per stage
        select_on = "dev" if "dev" in files else "test"
        items = {role: _items(corpus, files[role], params.files_cap())
                 for role in dict.fromkeys([select_on, "test"] if params.layer == "all" else ["test"])}
        rows = {role: _rows(corpus, role_items) for role, role_items in items.items()}
        stores = {role: cache.frames(role_rows) for role, role_rows in rows.items()}  # filled in scoring order
        ctx.cache_filled()

        def score(role: str, layers: list[int]) -> dict[int, list[ABXScore]]:
            feats = utterance_states(upstream, rows[role], stores[role], cache.precision)
            scores = {
                layer: abx(
                    {uid: states[layer] for uid, states in feats.items()},
                    items[role],
                    upstream.frame_shift,
                    params.speaker,
                    params.context,
                    params.distance,
                    params.librilight_compat,
                    threads=torch.get_num_threads(),  # the stage's share of the cores
                    device=ctx.device,
                )
                for layer in layers
            }
            note = scores[layers[0]][0].left_out_note
            if note:
                notes[role] = f"{role}: {note}"
            return scores

        extra: dict[str, Any] = {"frame_shift": upstream.frame_shift}
        if params.layer == "all":
            if select_on == "test":
                ctx.log("ABX: the corpus has no dev item file, so each condition's layer is chosen on the test "
                        "items (an optimistic score); give the corpus a dev item file or the entry a layer.")
            dev = score(select_on, list(range(n_layers)))
            extra["selected_on"] = select_on
            extra["layers"] = {
                f"layer{layer}": {s.name: 100 * s.score for s in scores} for layer, scores in dev.items()
            }
            best = {
                cond: min(dev, key=lambda layer, i=i: _nan_last(dev[layer][i].score))
                for i, cond in enumerate(s.name for s in dev[0])
            }
            test = score("test", sorted(set(best.values())))
            chosen = [test[best[s.name]][i] for i, s in enumerate(dev[0])]
            extra["best_layer"] = best
        else:
            layer = params.layer % n_layers
            chosen = score("test", [layer])[layer]
            extra["best_layer"] = {s.name: layer for s in chosen}
        if notes:
            ctx.log(f"ABX {'; '.join(notes.values())}")
        metrics = {s.name: 100 * s.score for s in chosen}
        pairs: dict[str, dict[str, list[float]]] = {}
        for s in chosen:
            for a, b, err in s.pairs:
                pairs.setdefault(f"{a}|{b}", {})[s.name] = [err, 1.0]
        return EvalResult(
            metrics=metrics,
            directions={k: "lower" for k in metrics},
            n_items=len(pairs),
            items=[{"id": k, "stats": v} for k, v in sorted(pairs.items())],
            layer_weights=None,
            extra=extra,
        )


def _nan_last(x: float) -> float:
    return float("inf") if np.isnan(x) else x


def _items(corpus: PreparedCorpus, name: str, max_files: int | None) -> list[Item]:
    from harness.api import read_item_file

    items = read_item_file(corpus.root / name)
    if max_files:
        keep = set(sorted({it.file for it in items})[:max_files])
        items = [it for it in items if it.file in keep]
    return items


def _rows(corpus: PreparedCorpus, items: list[Item]) -> list[dict[str, Any]]:
    """The corpus rows of the files ``items`` name, in corpus order."""
    wanted = {it.file for it in items}
    rows = [r for split in corpus.splits for r in corpus.utterances(split) if r["id"] in wanted]
    found = {r["id"] for r in rows}
    if wanted - found:
        missing = sorted(wanted - found)
        raise CorpusError(f"ABX item file names utterance {missing[0]!r}, which no split of {corpus.name!r} has.")
    return rows


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(ABXDownstream)
