# ---------------------------------------------------------------------------------------------------
# Shared prepared corpora (audio and corpora area). Session-scoped: each is generated once per test
# session into a temporary folder; the fixture returns the prepared corpus folder (a Path that
# harness.core.manifest.PreparedCorpus reads).
#   synthetic_corpus: 120 espeak utterances (~2-4 s each, with nuisance), 8 seen speakers
#       (train/dev/test) + 2 unseen ones (test_unseen, the slot-filling test split), 4 styles
#       (emotion), 4 folds, phones with times, text, intent/slots, dev.item/test.item (ABX).
#   nonspeech_corpus: 60 procedural non-speech clips of 2 s, 16 classes, 1-3 tags per clip.
# Tests must not write into these folders.
# ---------------------------------------------------------------------------------------------------
import pytest


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams
    from tests.corpus_fixtures import prepare_for_tests

    params = SyntheticParams(n_utterances=120, n_speakers=8, n_unseen_speakers=2, n_folds=4)
    return prepare_for_tests(SyntheticCorpus(), params, tmp_path_factory.mktemp("synthetic_corpus"))


@pytest.fixture(scope="session")
def nonspeech_corpus(tmp_path_factory):
    from plugins.corpora.synthetic_nonspeech import NonspeechParams, SyntheticNonspeech
    from tests.corpus_fixtures import prepare_for_tests

    params = NonspeechParams(n_clips=60, clip_seconds=2.0)
    return prepare_for_tests(SyntheticNonspeech(), params, tmp_path_factory.mktemp("nonspeech_corpus"))


@pytest.fixture()
def toy_cli(monkeypatch):
    """`harness.cli.main` over the toy plugins (tests/toy_plugins.py), on the CPU."""
    from tests.core_helpers import toy_manager

    manager = toy_manager()
    monkeypatch.setattr("harness.cli.common.default_manager", lambda: manager)
    monkeypatch.setattr("harness.pipeline.execute.default_manager", lambda: manager)
    return manager
