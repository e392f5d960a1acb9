"""Query-by-example (``qbe``): the subsequence DTW and the MTWV against brute-force references, the
downstream end to end on the embedded corpus's spoken queries, and the QUESST 2014 loader."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.core.errors import CorpusError
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation.term_detection import Documents, match_costs, query_scores
from harness.evaluation.twv import maximum_twv
from harness.report.item_stats import from_items
from tests.downstream_helpers import make_ctx

# ----------------------------------------------------------------------------- DTW


def _distances(query: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """``exp(cosine distance) - 1`` with scipy, each row min-max normalised."""
    from scipy.spatial.distance import cdist

    dist = np.exp(cdist(query, doc, "cosine")) - 1
    low, high = dist.min(axis=1, keepdims=True), dist.max(axis=1, keepdims=True)
    return (dist - low) / np.clip(high - low, 1e-9, None)


def _every_path_cost(dist: np.ndarray) -> float:
    """Brute force: every start column and every sequence of document steps (0, 1 or 2) per query row."""
    n, m = dist.shape
    best = np.inf
    for start in range(m):
        for steps in itertools.product((0, 1, 2), repeat=n - 1):
            cols = start + np.r_[0, np.cumsum(steps)]
            if cols[-1] < m:
                best = min(best, dist[np.arange(n), cols].sum())
    return best / n


def _costs(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    return Documents([torch.from_numpy(d) for d in docs]).costs(torch.from_numpy(query)).numpy()


@pytest.mark.parametrize("seed", range(5))
def test_subsequence_dtw_is_the_cheapest_asymmetric_path(seed):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(4, 6)).astype(np.float32)
    docs = [rng.normal(size=(n, 6)).astype(np.float32) for n in (7, 1, 3, 9)]  # ragged: padded together
    expected = [_every_path_cost(_distances(query, d)) for d in docs]
    assert _costs(query, docs) == pytest.approx(expected, abs=1e-5)


def test_documents_in_many_groups_give_the_same_costs_in_their_own_order(monkeypatch):
    rng = np.random.default_rng(7)
    query = rng.normal(size=(6, 5)).astype(np.float32)
    docs = [rng.normal(size=(n, 5)).astype(np.float32) for n in rng.integers(8, 40, size=12)]
    together = _costs(query, docs)
    assert len(Documents([torch.from_numpy(d) for d in docs]).groups) == 1
    q = F.normalize(torch.from_numpy(query), dim=1)
    one_by_one = [match_costs(q, F.normalize(torch.from_numpy(d), dim=1)[None], torch.tensor([len(d)])).item()
                  for d in docs]
    assert together == pytest.approx(one_by_one, abs=1e-6)
    monkeypatch.setattr("harness.evaluation.term_detection.GROUP_FRAMES", 40)  # about one document a group
    assert len(Documents([torch.from_numpy(d) for d in docs]).groups) >= 6
    assert _costs(query, docs) == pytest.approx(together, abs=1e-6)


def test_a_query_found_inside_a_document_costs_nothing_and_scores_highest():
    rng = np.random.default_rng(0)
    doc = rng.normal(size=(30, 8)).astype(np.float32)
    query = doc[11:19].copy()
    assert _costs(query, [doc])[0] == pytest.approx(0.0, abs=1e-6)
    others = [rng.normal(size=(25, 8)).astype(np.float32) for _ in range(5)]
    documents = Documents([torch.from_numpy(d) for d in [*others[:2], doc, *others[2:]]])
    scores = query_scores(torch.from_numpy(query), documents)
    assert int(np.argmax(scores)) == 2 and scores.mean() == pytest.approx(0.0, abs=1e-9)
    assert np.all(query_scores(torch.from_numpy(query[:4]), documents) == 0)  # under five frames: not matched


# ----------------------------------------------------------------------------- MTWV


def _twv_by_definition(scores, truth, threshold, beta):
    values = []
    for q in range(len(scores)):
        n_true = truth[q].sum()
        if n_true == 0:
            continue
        detected = scores[q] > threshold
        p_miss = 1 - (detected & truth[q]).sum() / n_true
        p_fa = (detected & ~truth[q]).sum() / (len(scores[q]) - n_true)
        values.append(p_miss + beta * p_fa)
    return 1 - np.mean(values)


@pytest.mark.parametrize("seed", range(4))
def test_mtwv_is_the_best_twv_over_every_threshold(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((6, 40)) < 0.15
    truth[0] = False  # a query with no true document is left out
    scores = np.round(rng.normal(size=truth.shape) + 2.5 * truth, 1)  # ties
    mtwv, threshold = maximum_twv(scores, truth, beta=2.0)
    cuts = np.r_[np.unique(scores), np.inf]
    best = max(0.0, max(_twv_by_definition(scores, truth, t, 2.0) for t in cuts[:-1] - 1e-9))
    assert mtwv == pytest.approx(best) and _twv_by_definition(scores, truth, threshold, 2.0) == pytest.approx(mtwv)


def test_mtwv_by_hand():
    truth = np.array([[True, False, False, False]])
    assert maximum_twv(np.array([[3.0, 1.0, 0.0, -1.0]]), truth, beta=12.49)[0] == pytest.approx(1.0)
    # the true document ranks second: detecting it costs one false alarm, 12.49 / 3 > 1, so detect nothing
    assert maximum_twv(np.array([[1.0, 3.0, 0.0, -1.0]]), truth, beta=12.49)[0] == 0.0
    assert maximum_twv(np.array([[1.0, 3.0, 0.0, -1.0]]), truth, beta=1.5)[0] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def qbe_run(tmp_path_factory):
    from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams
    from tests.corpus_fixtures import prepare_for_tests

    params = SyntheticParams(n_utterances=60, n_speakers=4, n_unseen_speakers=2, grammar="sf_commands", qbe_terms=3)
    corpus = PreparedCorpus(prepare_for_tests(SyntheticCorpus(), params, tmp_path_factory.mktemp("qbe") / "c"))
    manager = PluginManager()
    upstream_plugin = manager.create("upstream", "fbank")
    upstream = upstream_plugin.build(upstream_plugin.Params(), seed=0)
    plugin = manager.create("downstream", "qbe")
    ctx = make_ctx(tmp_path_factory.mktemp("qbe_stage"))
    return corpus, ctx, plugin.evaluate(upstream, corpus, validate_params(plugin.Params, {}, "qbe"), ctx)


def test_the_embedded_corpus_has_spoken_queries_with_their_documents(qbe_run):
    corpus, _, _ = qbe_run
    documents = {r["id"]: r["text"].split() for r in corpus.utterances("test")}
    for split in ("qbe_dev", "qbe_test"):
        queries = corpus.utterances(split)
        assert len(queries) == 3 and all(r["speaker"].startswith("u") for r in queries)  # unseen voices
        for r in queries:
            assert r["occurs_in"] == sorted(d for d, words in documents.items() if r["text"] in words)
            assert r["occurs_in"]


def test_qbe_picks_a_layer_on_dev_and_writes_the_detections(qbe_run):
    corpus, ctx, result = qbe_run
    assert result.directions == {"mtwv": "higher"} and 0.0 <= result.metrics["mtwv"] <= 1.0
    assert result.extra["best_layer"] == 0 and set(result.extra["layers"]) == {"layer0"}  # FBank: one layer
    tree = ET.parse(ctx.out_dir / "qbe_test.stdlist.xml").getroot()
    terms = tree.findall("detected_termlist")
    assert [t.get("termid") for t in terms] == [r["id"] for r in corpus.utterances("qbe_test")]
    assert all(len(t.findall("term")) == len(corpus.utterances("test")) for t in terms)
    assert {p["id"] for p in result.predictions} == {r["id"] for r in corpus.utterances("qbe_test")}


def test_qbe_items_are_the_queries_gains_and_give_the_mtwv_back(qbe_run):
    corpus, _, result = qbe_run
    queries = corpus.utterances("qbe_test")
    assert [it["id"] for it in result.items] == [r["id"] for r in queries]
    with_truth = [it for it, r in zip(result.items, queries, strict=True) if r["occurs_in"]]
    assert all("mtwv" in it["stats"] for it in with_truth)
    assert all(it["stats"] == {} for it in result.items if it not in with_truth)  # the MTWV leaves them out
    gains = from_items({0: result.items}, "mtwv")
    assert gains.n_items == len(with_truth)
    assert gains.value == pytest.approx(result.metrics["mtwv"], abs=1e-12)


# ----------------------------------------------------------------------------- QUESST 2014


@pytest.fixture
def quesst_tree(tmp_path) -> Path:
    import soundfile as sf

    root = tmp_path / "quesst14Database"
    for rel in ("Audio/quesst14_00001.wav", "Audio/quesst14_00002.wav", "dev_queries/quesst14_dev_0001.wav",
                "dev_queries/quesst14_dev_0002.wav", "eval_queries/quesst14_eval_0001.wav"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, 0.1 * np.sin(np.arange(4000) / 3.0), 8000, subtype="PCM_16")
    for split, lines in (("dev", "LEXEME quesst14_00002 1 0.20 0.30 quesst14_dev_0001 <NA> spkr 1\n"),
                         ("eval", "LEXEME quesst14_00001 1 0.10 0.20 quesst14_eval_0001 <NA> spkr 1\n"
                                  "LEXEME quesst14_00002 1 0.10 0.20 quesst14_eval_0001 <NA> spkr 1\n")):
        path = root / "scoring" / f"groundtruth_quesst14_{split}" / f"quesst14_{split}.rttm"
        path.parent.mkdir(parents=True)
        path.write_text(lines)
    return root


def test_quesst14_reads_documents_queries_and_their_ground_truth(quesst_tree, tmp_path):
    from plugins.corpora.quesst14 import Quesst14
    from tests.corpus_fixtures import prepare_for_tests

    corpus = PreparedCorpus(prepare_for_tests(Quesst14(), Quesst14.Params(root=quesst_tree), tmp_path / "c"))
    assert [r["id"] for r in corpus.utterances("documents")] == ["quesst14_00001", "quesst14_00002"]
    assert {r["id"]: r["occurs_in"] for r in corpus.utterances("dev")} == {
        "quesst14_dev_0001": ["quesst14_00002"], "quesst14_dev_0002": []}
    assert corpus.utterances("test")[0]["occurs_in"] == ["quesst14_00001", "quesst14_00002"]
    assert corpus.split_for("qbe", "documents") == "documents" and "occurs_in" in corpus.meta["label_fields"]


def test_quesst14_names_a_ground_truth_document_it_does_not_have(quesst_tree, tmp_path):
    from plugins.corpora.quesst14 import Quesst14
    from tests.corpus_fixtures import prepare_for_tests

    (quesst_tree / "Audio" / "quesst14_00002.wav").unlink()
    with pytest.raises(CorpusError, match="names document 'quesst14_00002', which is not in"):
        prepare_for_tests(Quesst14(), Quesst14.Params(root=quesst_tree), tmp_path / "c")


def test_qbe_past_its_frame_budget_runs_the_upstream_and_scores_the_same(qbe_run, tmp_path):
    """``max_frame_gb`` is execution-only: frames computed on the fly are the cached ones."""
    corpus, cached_ctx, cached = qbe_run
    assert list(cached_ctx.cache_root.rglob("*.npy"))  # within the budget the frames are cached
    manager = PluginManager()
    upstream_plugin, plugin = manager.create("upstream", "fbank"), manager.create("downstream", "qbe")
    ctx = make_ctx(tmp_path / "stage")
    on_the_fly = plugin.evaluate(upstream_plugin.build(upstream_plugin.Params(), seed=0), corpus,
                                 validate_params(plugin.Params, {"max_frame_gb": 1e-9}, "qbe"), ctx)
    assert not list((tmp_path / "stage").rglob("*.npy"))  # nothing was cached
    assert on_the_fly.metrics == cached.metrics and on_the_fly.items == cached.items
