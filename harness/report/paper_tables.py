"""The numbers the Speech-FT paper reports (Lin et al., Tables 1–10 and 16), and which models of the shipped
recipes reproduce each row, so that a run's leaderboard can put them beside its own (``harness leaderboard
--paper``).

Every SUPERB score is the paper's own (against the SUPERB journal extension's FBank and SOTA values,
``superb-2024``); the harness's scorer gives each of them from the row's metrics to 0.01, except Table 1's 805.33
for Stable-FT of ASR on LibriSpeech, whose Table 2 metrics give 805.53 (``tests/report/test_paper_tables.py``).

A row names the models it reports by the recipes' entry names: (upstream, fine-tuning entry, merge entry,
the merge's α, or TIES's ``lambda``; None for a fine-tuned model no merge applies to). The pre-trained model
of an upstream is its ``pre-trained`` row.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the four tasks of the paper's SUPERB score, and Table 16's ten
FOUR_TASKS = ("pr.per", "sid.acc", "er.acc", "sf.f1", "sf.cer")
TEN_TASKS = ("pr.per", "asr.wer", "ks.acc", "qbe.mtwv", "sid.acc", "asv.eer", "sd.der", "er.acc", "ic.acc", "sf.f1",
             "sf.cer")
SUPERB = "superb.score"
PRETRAINED = "pre-trained"

ModelKey = tuple[str, str, str, float | None]  # upstream, fine-tuning entry, merge entry ("" for none), α or lambda


@dataclass(frozen=True)
class PaperRow:
    """One row of one of the paper's tables: its values (metric key -> value, ``superb.score`` included) and the
    shipped recipes' models that reproduce it."""

    table: str
    setting: str  # "PC on TIMIT"
    method: str  # "Speech-FT", "Stable-FT", "Pre-trained", ...
    values: dict[str, float]
    models: tuple[ModelKey, ...]

    @property
    def label(self) -> str:
        return f"{self.table}: {self.setting + ', ' if self.setting else ''}{self.method}"


def _row(table: str, setting: str, method: str, metrics: tuple[float, ...], superb: float,
         models: tuple[ModelKey, ...], tasks: tuple[str, ...] = FOUR_TASKS) -> PaperRow:
    if len(metrics) != len(tasks):
        raise ValueError(f"{table} {setting} {method}: {len(metrics)} values for {len(tasks)} metrics")
    return PaperRow(table, setting, method, {**dict(zip(tasks, metrics, strict=True)), SUPERB: superb}, models)


def _merged(upstream: str, finetune: str, merge: str, *values: float) -> tuple[ModelKey, ...]:
    return tuple((upstream, finetune, merge, v) for v in values)


HUBERT, WAV2VEC2, DECOAR2 = "hubert_base", "wav2vec2_base", "decoar2"
_PRE_TRAINED = (5.17, 81.86, 64.99, 88.54, 24.70)

#: Tables 1 and 2: HuBERT Base fine-tuned on eight tasks (recipes/speech_ft_supervised.yaml; ablations.yaml and
#: superb_full.yaml share some of its models), SUPERB scores from Table 1
_SUPERVISED = [
    ("asr_ted", "ASR on TED", (3.94, 84.11, 67.78, 88.84, 23.46), 905.79, (5.22, 79.89, 65.38, 88.52, 23.80), 870.71),
    ("pc_timit", "PC on TIMIT", (4.76, 81.78, 65.48, 88.65, 24.05), 877.66, (10.34, 66.34, 61.25, 83.50, 33.82),
     726.64),
    ("er_cremad", "ER on CREMA-D", (5.02, 83.36, 65.59, 88.41, 24.75), 877.97, (6.62, 81.48, 64.69, 87.28, 27.03),
     847.33),
    ("sid_libri", "SID on LibriSpeech", (5.67, 83.24, 65.48, 87.98, 24.90), 871.93,
     (14.18, 75.52, 59.51, 84.73, 31.54), 741.19),
    ("asr_libri", "ASR on LibriSpeech", (3.93, 82.79, 66.38, 87.97, 24.93), 882.44,
     (5.35, 72.14, 63.82, 86.01, 29.32), 805.33),
    ("pr_libri", "PR on LibriSpeech", (2.99, 81.95, 65.79, 88.60, 24.52), 883.93, (2.21, 75.60, 63.14, 88.09, 26.24),
     842.03),
    ("sid_vox", "SID on VoxCeleb1", (6.91, 88.80, 66.03, 87.20, 25.23), 881.07, (29.08, 87.75, 60.29, 77.64, 43.27),
     651.42),
    ("er_iemocap", "ER on IEMOCAP", (4.95, 82.63, 85.95, 87.23, 25.80), 1010.29, (16.11, 73.07, 90.07, 81.40, 36.62),
     908.86),
]

#: Table 4: setting, fine-tuning entry, merge entry, then Speech-FT's and Stable-FT's metrics and SUPERB scores
_MULTITASK = [
    ("MTF", "mtf", "mtf_speech_ft", (4.27, 85.47, 65.71, 87.76, 25.46), 880.63, (2.86, 86.57, 57.06, 83.95, 31.07),
     785.85),
    ("linear merge", "pr+sid", "linear_merge", (4.32, 85.60, 66.17, 88.22, 25.53), 886.36,
     (9.80, 87.21, 63.72, 85.34, 30.45), 822.72),
    ("TIES merge", "pr+sid", "ties_merge", (4.67, 86.23, 65.46, 88.47, 24.77), 885.95,
     (14.67, 88.57, 62.46, 84.24, 32.45), 788.91),
    ("sequential", "pr+sid", "sequential", (4.77, 87.61, 65.80, 88.15, 25.45), 887.50,
     (25.72, 85.97, 60.03, 76.13, 42.76), 648.96),
]

#: Table 6: upstream entry, name, then the pre-trained model's, Speech-FT's and Stable-FT's metrics and scores
_OTHER_UPSTREAMS = [
    (WAV2VEC2, "wav2vec 2.0", (5.78, 75.26, 63.45, 88.12, 24.88), 837.08, (4.95, 77.06, 63.73, 87.88, 24.92), 844.94,
     (11.13, 64.80, 61.46, 84.30, 34.02), 725.29),
    (DECOAR2, "DeCoAR 2.0", (14.91, 74.21, 62.46, 83.18, 34.66), 736.77, (12.18, 74.07, 62.59, 84.39, 33.14), 757.96,
     (25.36, 58.13, 59.25, 75.25, 44.86), 559.15),
]

ROWS: list[PaperRow] = [
    _row("Table 2", "", "Pre-trained", _PRE_TRAINED, 870.20, ((HUBERT, PRETRAINED, "", None),)),
    *[r for entry, setting, ft, ft_score, st, st_score in _SUPERVISED for r in (
        _row("Table 2", setting, "Speech-FT", ft, ft_score, _merged(HUBERT, entry, "speech_ft", 0.25)),
        _row("Table 2", setting, "Stable-FT", st, st_score, _merged(HUBERT, entry, "speech_ft", 1.0)))],
    # Table 3: HuBERT's pre-training continued on AISHELL-3 (recipes/continued_pretraining.yaml): the English
    # SUPERB score, and the CER of Chinese ASR on Common Voice zh-CN (the recipe's downstream asr_zh)
    *[_row("Table 3", setting, method, metrics, score, models, (*FOUR_TASKS, "asr_zh.cer"))
      for setting, method, metrics, score, models in (
          ("", "Pre-trained", (*_PRE_TRAINED, 24.94), 870.20, ((HUBERT, PRETRAINED, "", None),)),
          ("continued pre-training on AISHELL-3", "Speech-FT", (5.27, 81.57, 65.43, 87.82, 25.20, 24.23), 866.51,
           _merged(HUBERT, "aishell3_cpt", "speech_ft", 0.25)),
          ("continued pre-training on AISHELL-3", "Stable-FT", (10.84, 78.52, 62.81, 85.28, 30.44, 23.47), 789.88,
           _merged(HUBERT, "aishell3_cpt", "speech_ft", 1.0)))],
    # Table 4: two fine-tuning tasks, PR on LibriSpeech and SID on VoxCeleb1 (recipes/multitask.yaml); the merges
    # of the two fine-tuned models are labelled pr+sid
    *[r for setting, finetune, merge, ft, ft_score, st, st_score in _MULTITASK for r in (
        _row("Table 4", setting, "Speech-FT", ft, ft_score, _merged(HUBERT, finetune, merge, 0.25)),
        _row("Table 4", setting, "Stable-FT", st, st_score, _merged(HUBERT, finetune, merge, 1.0)))],
    # Table 5: Speech-FT of each task alone (sequential's single links)
    _row("Table 5", "PR on LibriSpeech", "Speech-FT", (2.99, 81.95, 65.79, 88.60, 24.52), 883.93,
         _merged(HUBERT, "pr", "single_task", 0.25)),
    _row("Table 5", "SID on VoxCeleb1", "Speech-FT", (6.91, 88.80, 66.03, 87.20, 25.23), 881.07,
         _merged(HUBERT, "sid", "single_task", 0.25)),
    # Table 6: wav2vec 2.0 Base and DeCoAR 2.0 fine-tuned on PR on LibriSpeech (recipes/upstreams.yaml)
    *[r for upstream, setting, pre, pre_score, ft, ft_score, st, st_score in _OTHER_UPSTREAMS for r in (
        _row("Table 6", setting, "Pre-trained", pre, pre_score, ((upstream, PRETRAINED, "", None),)),
        _row("Table 6", setting, "Speech-FT", ft, ft_score, _merged(upstream, "pr_libri", "speech_ft", 0.25)),
        _row("Table 6", setting, "Stable-FT", st, st_score, _merged(upstream, "pr_libri", "speech_ft", 1.0)))],
    # Table 7: an L2 penalty towards θ0 instead of interpolation, at the best weight the paper tried
    # (recipes/ablations.yaml sweeps the weight; every setting is compared with the paper's best)
    _row("Table 7", "PC on TIMIT", "Regularization", (4.46, 80.67, 64.84, 87.91, 25.41), 862.26,
         ((HUBERT, "pc_timit_l2", "", None),)),
    _row("Table 7", "SID on VoxCeleb1", "Regularization", (9.94, 88.34, 63.88, 86.13, 28.24), 838.56,
         ((HUBERT, "sid_vox_l2", "", None),)),
    # Table 8: Speech-FT without stable fine-tuning (β = 0, CNN trained)
    _row("Table 8", "PC on TIMIT", "Speech-FT without stable fine-tuning", (4.78, 81.77, 65.17, 88.60, 24.89),
         872.12, _merged(HUBERT, "pc_timit_regular", "without_stable_ft", 0.25)),
    _row("Table 8", "SID on VoxCeleb1", "Speech-FT without stable fine-tuning", (10.18, 88.49, 63.59, 86.19, 28.35),
         836.08, _merged(HUBERT, "sid_vox_regular", "regular", 0.25)),
    # Table 9: the α sweep of PC on TIMIT (recipes/alpha_sweep.yaml); α = 0 is the pre-trained model
    *[_row("Table 9", "PC on TIMIT", f"α = {alpha:g}", metrics, score,
           _merged(HUBERT, "pc_timit", "interpolation", alpha))
      for alpha, metrics, score in ((0.1, (4.99, 81.19, 65.33, 88.69, 24.01), 874.68),
                                    (0.25, (4.76, 81.78, 65.48, 88.65, 24.05), 877.66),
                                    (0.5, (5.15, 80.24, 64.28, 87.03, 27.22), 843.75),
                                    (0.75, (6.63, 75.34, 63.10, 86.55, 28.47), 810.79),
                                    (1.0, (10.34, 66.34, 61.25, 83.50, 33.82), 726.64))],
    # Table 10: regular against stable fine-tuning, unmerged (its SID rows are Table 2's and Table 8's models)
    _row("Table 10", "ER on CREMA-D", "stable fine-tuning", (6.62, 81.48, 64.69, 87.28, 27.03), 847.33,
         ((HUBERT, "er_cremad", "", None),)),
    _row("Table 10", "SID on VoxCeleb1", "regular fine-tuning", (34.68, 86.96, 56.09, 73.73, 46.61), 568.62,
         _merged(HUBERT, "sid_vox_regular", "regular", 1.0)),
    _row("Table 10", "ER on CREMA-D", "regular fine-tuning", (6.25, 80.10, 64.34, 86.43, 27.97), 834.38,
         ((HUBERT, "er_cremad_regular", "", None),)),
    # Table 16: every SUPERB task, PC on TIMIT (recipes/superb_full.yaml)
    _row("Table 16", "PC on TIMIT, ten tasks", "Speech-FT",
         (4.76, 6.53, 96.49, 0.0883, 81.78, 6.03, 6.25, 65.48, 98.73, 88.65, 24.05), 829.60,
         _merged(HUBERT, "pc_timit", "speech_ft", 0.25), TEN_TASKS),
    _row("Table 16", "PC on TIMIT, ten tasks", "Stable-FT",
         (10.34, 12.18, 94.94, 0.0536, 66.34, 6.94, 7.54, 61.25, 96.76, 83.50, 33.82), 668.70,
         _merged(HUBERT, "pc_timit", "speech_ft", 1.0), TEN_TASKS),
    _row("Table 16", "ten tasks", "Pre-trained",
         (5.17, 6.38, 96.59, 0.0687, 81.86, 5.56, 6.32, 64.99, 98.02, 88.54, 24.70), 815.47,
         ((HUBERT, PRETRAINED, "", None),), TEN_TASKS),
]
