"""Downstream ``qbe``: query-by-example spoken term detection by DTW on one layer's frames; MTWV
(no head, nothing trained).

SUPERB (s3prl ``downstream/quesst14_dtw``, QUESST 2014): each spoken query is matched against every
document by subsequence DTW on one hidden layer (:mod:`harness.evaluation.term_detection` for the
distance, the DTW and the scores); every layer is tried on the dev queries and the best one is
reported on the test queries, as SUPERB picks the layer on dev. Metric: the maximum term-weighted
value (higher is better), with QUESST 2014's β.

The corpus gives three splits (``task_splits["qbe"]``: ``documents``, ``dev`` and ``test``, the last
two of queries); each query row lists the documents its term occurs in (``occurs_in``). The test
detections are written to ``<stage>/qbe_test.stdlist.xml`` in the format QUESST's scorer reads (scores
per query and document, YES above 2 standard deviations, as s3prl writes them).

``layer``: a hidden-state index, or ``all`` (default). The per-item results are the test queries'
gains at the candidate thresholds (:func:`harness.evaluation.twv.query_gains`), so the leaderboard
resamples queries for the MTWV's interval and its paired comparisons.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from harness import hookimpl
from harness.api import (
    EXECUTION_ONLY,
    QUESST_BETA,
    CorpusError,
    DownstreamPlugin,
    EvalResult,
    ExtractPrecision,
    PluginParams,
    PreparedCorpus,
    StageContext,
)

if TYPE_CHECKING:
    from harness.api import UpstreamModel

#: s3prl's YES decision in the detection list: a query-standardised score above this
DECISION_SCORE = 2.0


class QbEParams(PluginParams):
    layer: int | Literal["all"] = "all"
    beta: float = Field(QUESST_BETA, gt=0, description="weight of false alarms against misses in the TWV")
    max_frame_gb: Annotated[float, EXECUTION_ONLY] = Field(
        4.0, gt=0, allow_inf_nan=False, description="frame cache budget; past it the upstream runs on the fly")
    extract_precision: ExtractPrecision = "fp32"


class QueryByExample(DownstreamPlugin[QbEParams]):
    name = "qbe"
    version = "2"
    summary = "Query-by-example term detection: subsequence DTW per layer, best layer on dev; MTWV"
    order = 28
    label_fields = ("occurs_in",)
    frame_cache = True

    def evaluate(self, upstream: UpstreamModel, corpus: PreparedCorpus, params: QbEParams,
                 ctx: StageContext) -> EvalResult:
        from harness.api import check_layer, frame_cache

        corpus.require(self.label_fields, f"downstream {self.name!r}")
        rows = {role: corpus.utterances(corpus.split_for(self.name, role)) for role in ("documents", "dev", "test")}
        doc_ids = {r["id"] for r in rows["documents"]}
        for role in ("dev", "test"):
            unknown = sorted({d for r in rows[role] for d in r.get("occurs_in", ())} - doc_ids)
            if unknown:
                raise CorpusError(f"qbe: a {role} query of {corpus.name!r} occurs in {unknown[0]!r}, which is not "
                                  "one of its documents; the ground truth and the document split disagree.")
        n_layers = upstream.num_hidden_states
        check_layer(params.layer, upstream, "qbe")
        cache = frame_cache(upstream, ctx, params.max_frame_gb, params.extract_precision)
        stores = {role: cache.frames(role_rows) for role, role_rows in rows.items()}
        ctx.cache_filled()
        states = {role: _states(upstream, rows[role], stores[role], cache.precision) for role in rows}

        def score(role: str, layer: int) -> tuple[float, float, np.ndarray, np.ndarray]:
            return _score(states["documents"], states[role], rows[role], [r["id"] for r in rows["documents"]],
                          layer, params.beta, ctx.device)

        extra: dict[str, Any] = {}
        if params.layer == "all":
            dev = {layer: score("dev", layer)[0] for layer in range(n_layers)}
            layer = max(dev, key=lambda k: (dev[k], -k))
            extra["layers"] = {f"layer{k}": {"mtwv": v} for k, v in dev.items()}
        else:
            layer = params.layer % n_layers
        mtwv, threshold, scores, truth = score("test", layer)
        extra.update(best_layer=layer, threshold=threshold, beta=params.beta)
        queries, docs = [r["id"] for r in rows["test"]], [r["id"] for r in rows["documents"]]
        write_stdlist(ctx.out_dir / "qbe_test.stdlist.xml", queries, docs, scores)
        predictions = [{"id": q, "ref": sorted(r.get("occurs_in", [])),
                        "hyp": [d for d, s in zip(docs, row, strict=True) if s > threshold]}
                       for q, r, row in zip(queries, rows["test"], scores, strict=True)]  # fmt: skip
        return EvalResult(metrics={"mtwv": mtwv}, directions={"mtwv": "higher"}, n_items=len(queries),
                          items=_items(queries, scores, truth, params.beta), extra=extra, predictions=predictions)


def _items(queries: list[str], scores: np.ndarray, truth: np.ndarray, beta: float) -> list[dict[str, Any]]:
    """Per test query its gains at the candidate thresholds (none for a query without a true document,
    which the MTWV leaves out)."""
    from harness.api import query_gains

    kept, gains = query_gains(scores, truth, beta)
    stats = {int(q): {"mtwv": {"gains": g.tolist()}} for q, g in zip(kept, gains, strict=True)}
    return [{"id": q, "stats": stats.get(i, {})} for i, q in enumerate(queries)]


def _states(upstream: UpstreamModel, rows: list[dict[str, Any]], store: Any, precision: str) -> list[Any]:
    """Per row its L×T×D hidden states (read from the frame cache as each layer is scored)."""
    from harness.api import utterance_states

    by_id = utterance_states(upstream, rows, store, precision)
    return [by_id[r["id"]] for r in rows]


def _score(docs: list[Any], queries: list[Any], query_rows: list[dict[str, Any]], doc_ids: list[str],
           layer: int, beta: float, device: Any) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(MTWV, its threshold, the queries × documents scores and ground truth) on one layer."""
    from harness.api import Documents, maximum_twv, query_scores, standardise

    normed = standardise([x[layer].float() for x in (*queries, *docs)])
    documents = Documents(normed[len(queries):], device)
    scores = np.stack([query_scores(q, documents) for q in normed[: len(queries)]])
    column = {d: j for j, d in enumerate(doc_ids)}
    truth = np.zeros(scores.shape, dtype=bool)
    for i, row in enumerate(query_rows):
        truth[i, [column[d] for d in row.get("occurs_in", ())]] = True
    if not truth.any():
        raise CorpusError("qbe: no query occurs in any document; the ground truth is empty.")
    mtwv, threshold = maximum_twv(scores, truth, beta)
    return mtwv, threshold, scores, truth


def write_stdlist(path: Path, queries: list[str], docs: list[str], scores: np.ndarray) -> None:
    """The detections in the ``stdlist`` XML QUESST's scorer reads (one term per query, one entry per document)."""
    root = ET.Element("stdlist", termlist_filename="benchmark.stdlist.xml", indexing_time="1.00",
                      language="english", index_size="1", system_id="benchmark")
    for query, row in zip(queries, scores, strict=True):
        terms = ET.SubElement(root, "detected_termlist", termid=query, term_search_time="1.0", oov_term_count="1")
        for doc, s in zip(docs, row, strict=True):
            ET.SubElement(terms, "term", file=doc, channel="1", tbeg="0.000", dur="0.00", score=f"{s:.4f}",
                          decision="YES" if s > DECISION_SCORE else "NO")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(QueryByExample)
