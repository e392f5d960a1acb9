"""What `harness plan` refuses before anything runs: labels a corpus lacks, meaningless probe numbers; and
what it allows with a word in the log (α outside [0, 1])."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness.cli import main
from harness.merging.task_vectors import TaskVectorMerge


def _recipe(tmp_path: Path, corpora: str, downstreams: str, extra: str = "") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: t\noutput: out\ncorpora:\n{corpora}upstreams:\n  fb: {{plugin: fbank}}\n{extra}"
                    f"downstreams:\n{downstreams}")
    return path


def test_er_on_a_corpus_without_emotions_is_refused_at_plan_time(tmp_path, capsys):
    (tmp_path / "vox").mkdir()
    path = _recipe(tmp_path, "  vox: {plugin: voxceleb1, root: vox}\n", "  er: {plugin: er, corpus: vox}\n")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert ("recipe.yaml line 8: downstreams.er.corpus: downstream 'er' needs the label(s) emotion but corpus "
            "'vox' (voxceleb1) has only speaker; pick a corpus that has them") in err
    assert not (tmp_path / "out").exists()


def test_a_label_the_embedded_corpus_can_make_is_refused_with_the_setting_that_makes_it(tmp_path, capsys):
    path = _recipe(tmp_path, "  speech: {plugin: synthetic}\n", "  ks: {plugin: ks, corpus: speech}\n")
    assert main(["plan", str(path)]) == 2
    assert ("downstream 'ks' needs the label(s) keyword but corpus 'speech' (synthetic) has only speaker, fold, "
            "emotion, text, intent, slots, phones; set keywords: N (N rounds of keyword clips per voice) on corpus "
            "'speech'") in capsys.readouterr().err
    fixed = _recipe(tmp_path, "  speech: {plugin: synthetic, keywords: 1}\n", "  ks: {plugin: ks, corpus: speech}\n")
    assert main(["plan", str(fixed)]) == 0, capsys.readouterr().err


def test_a_corpus_that_declares_no_labels_is_left_to_the_stage(tmp_path, capsys):
    (tmp_path / "libri").mkdir()
    path = _recipe(tmp_path, "  libri: {plugin: librispeech, root: libri}\n", "  pr: {plugin: pr, corpus: libri}\n")
    assert main(["plan", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_downstream_with_no_steps_is_refused_at_plan_time(tmp_path, capsys, value):
    path = _recipe(tmp_path, "  speech: {plugin: synthetic}\n",
                   f"  sid: {{plugin: sid, corpus: speech, steps: {value}}}\n")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"downstreams.sid.steps: input should be greater than or equal to 1 (got {value})" in err


@pytest.mark.parametrize(("finetune", "message"), [
    ("{plugin: supervised, task: asr, corpus: speech, task_params: {lstm_dim: [256]}}",
     "recipe.yaml line 8: finetune.ft.task_params.lstm_dim: unknown key 'lstm_dim'; did you mean 'lstm_dims'?"),
    ("{plugin: supervised, task: asrr, corpus: speech}",
     "finetune.ft.task: there is no task named 'asrr' (a task or downstream plugin); did you mean 'asr'?"),
    ("{plugin: multitask, tasks: [{task: pr, corpus: speech, task_params: {protocol: big}}]}",
     "finetune.ft.tasks.0.task_params.protocol: input should be 'embedded' or 'superb' (got 'big')"),
])
def test_a_fine_tuning_tasks_name_and_parameters_are_checked_at_plan_time(tmp_path, capsys, finetune, message):
    path = _recipe(tmp_path, "  speech: {plugin: synthetic}\n", "  sid: {plugin: sid, corpus: speech}\n",
                   extra=f"finetune:\n  ft: {finetune}\n")
    assert main(["plan", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_fine_tuning_entry_with_a_bad_task_is_named_at_once(tmp_path, capsys):
    path = _recipe(tmp_path, "  speech: {plugin: synthetic}\n", "  sid: {plugin: sid, corpus: speech}\n",
                   extra="finetune:\n  a: {plugin: supervised, task: asrr, corpus: speech}\n"
                         "  b: {plugin: supervised, task: pr, corpus: speech, task_params: {steps: 0}}\n")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems in the recipe" in err and "finetune.a.task: there is no task named 'asrr'" in err
    assert "finetune.b.task_params.steps: input should be greater than or equal to 1 (got 0)" in err


def test_alpha_outside_0_1_is_planned_and_logged_as_extrapolation(tmp_path, capsys, caplog):
    path = _recipe(tmp_path, "  speech: {plugin: synthetic}\n", "  sid: {plugin: sid, corpus: speech}\n",
                   extra="finetune:\n  ft: {plugin: supervised, task: sid, corpus: speech}\n"
                         "merges:\n  m: {plugin: linear, alpha: [-0.5, 1.5]}\n")
    assert main(["plan", str(path)]) == 0, capsys.readouterr().err
    with caplog.at_level(logging.INFO, logger="harness.merging"):
        for alpha in (-0.5, 0.0, 0.25, 1.0, 1.5):
            assert TaskVectorMerge.interpolation(alpha).scale == alpha
    assert [r.getMessage() for r in caplog.records] == [
        "alpha -0.5 lies outside [0, 1]: the merge extrapolates past the pre-trained model.",
        "alpha 1.5 lies outside [0, 1]: the merge extrapolates past the fine-tuned model.",
    ]


def test_er_on_an_undeclared_corpus_without_emotions_fails_in_one_sentence_when_it_runs(tmp_path):
    from harness.core.errors import CorpusError
    from harness.core.manifest import PreparedCorpus
    from harness.data.corpus import write_prepared
    from plugins.downstreams.er import EmotionRecognition, ERParams

    rows = {s: [{"id": f"{s}1", "path": "a.wav", "speaker": "x"}] for s in ("train", "dev", "test")}
    write_prepared(tmp_path / "c", "sounds", rows)
    with pytest.raises(CorpusError) as err:
        EmotionRecognition().make_task(PreparedCorpus(tmp_path / "c"), ERParams())
    assert str(err.value) == ("downstream 'er' needs the label(s) emotion but corpus 'sounds' has only speaker; "
                              "pick a corpus that has them.")
    assert err.value.exit_code == 2
