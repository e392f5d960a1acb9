"""The surface a plugin may use: everything in ``__all__`` is promised, nothing else is.

Built-in plugins import only from here (a test checks it), and third-party packages should too::

    from harness.api import MergePlugin, PluginParams, hookimpl

Names are imported on first use (PEP 562), so a plugin module that needs only the interfaces does
not pay for torch-heavy building blocks it never touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it; one section per plugin family
_EXPORTS: dict[str, str] = {
    # -- every plugin: contracts, parameters, errors, the stage context, registration
    **dict.fromkeys(
        ["Batch", "CorpusPlugin", "DownstreamPlugin", "EvalResult", "FinetunePlugin", "FinetuneResult",
         "MergePlugin", "Task",
         "TaskPlugin", "SpecAugSettings", "UpstreamPlugin"],
        "harness.core.interfaces"),
    **dict.fromkeys(["UpstreamModel", "UpstreamOutput"], "harness.core.model_types"),
    **dict.fromkeys(["Direction", "EXECUTION_ONLY", "InputPath", "PluginParams", "PluginRegistry"],
                    "harness.core.plugin"),
    **dict.fromkeys(["CheckpointError", "CorpusError", "HarnessError", "StageError"], "harness.core.errors"),
    "hookimpl": "harness.core.hookspecs",
    "StageContext": "harness.core.stage",
    "PreparedCorpus": "harness.core.manifest",
    # -- corpora: the local-corpus base, audio, phones, preparation helpers, AudioSet files, procedural sounds
    "audio": "harness.data",
    "sounds": "harness.data",
    **dict.fromkeys(["ARPABET", "SIL", "TIMIT_39", "TIMIT_61_TO_39", "strip_stress"], "harness.data.phones"),
    **dict.fromkeys(["CorpusRows", "LocalCorpus", "LocalCorpusParams", "checked", "normalise_text", "require",
                     "sample_hours", "split_by_speaker", "stable_fraction", "write_corpus"], "harness.data.corpus"),
    **dict.fromkeys(["AudioClass", "Segment", "audioset_rows", "carve_dev", "read_class_index", "read_ontology",
                     "read_segments", "subtree", "write_class_index", "write_segments"], "harness.data.audioset_csv"),
    # -- training on waveforms: batches, the loop, stable fine-tuning, pseudo-labels
    **dict.fromkeys(["DynamicBatchSampler", "MixedBatchSampler"], "harness.data.batching"),
    **dict.fromkeys(["WaveBatch", "WaveformSet", "pad_waves"], "harness.data.waveforms"),
    "fit": "harness.training.loop",
    **dict.fromkeys(["KMeans", "mfcc_frames", "sample_rows"], "harness.training.pseudo_labels"),
    **dict.fromkeys(["StableFTParams", "pick_corpus", "resolve_task", "split_rows", "train_config"],
                    "harness.training.stable_ft_params"),
    **dict.fromkeys(["StableFineTuning", "finetune_on_task", "task_batch", "task_metrics_on_waveforms",
                     "training_loss", "training_waveforms"], "harness.training.stable_ft"),
    # -- tasks: frame labels from time alignments
    **dict.fromkeys(["IGNORE_LABEL", "frame_labels"], "harness.data.alignment"),
    # -- keyword spotting: the Speech Commands classes
    **dict.fromkeys(["KEYWORD_COMMANDS", "KEYWORD_SILENCE", "KEYWORD_UNKNOWN"], "harness.data.keywords"),
    # -- upstreams: the wav2vec 2.0 family, checkpoints, FBank, padding and pooling, seeded presets
    **dict.fromkeys(["load_torch_checkpoint", "tensors_only"], "harness.models.checkpoints"),
    **dict.fromkeys(["checkpoint_configs", "detect_family", "encoder_key"], "harness.models.fairseq"),
    **dict.fromkeys(["KaldiFbank", "add_deltas", "reduce_frames", "utterance_cmvn"], "harness.models.fbank"),
    **dict.fromkeys(["PretrainingHead", "SpeechTransformer", "SpeechTransformerPlugin"], "harness.models.hf_speech"),
    **dict.fromkeys(["ENCODER_SHAPES", "ENCODER_TRAINING", "SourceParams", "preset_configs"], "harness.models.sources"),
    "DeferredUpstreamPlugin": "harness.models.deferred",
    **dict.fromkeys(["frame_mask", "load_exact", "load_own_model", "mean_pool", "own_model_files", "run_encoder"],
                    "harness.models.speech_encoder"),
    "seeded": "harness.core.seeding",
    **dict.fromkeys(["FeatureCache", "FrameStore", "to_frame_dtype"], "harness.models.feature_cache"),
    "batched_forward": "harness.models.inference",
    "resolve_attention": "harness.models.packed_encoder",
    # -- merges: the task-arithmetic family (linear, TIES and sequential are configurations of it)
    "TensorSource": "harness.core.interfaces",
    **dict.fromkeys(["TaskVectorMerge", "TaskVectorMergePlugin", "TrimThresholds", "interpolation_shortcut"],
                    "harness.merging.task_vectors"),
    # -- downstreams: tasks, metrics, probes, ABX
    **dict.fromkeys(["CTCTask", "UtteranceTask", "char_vocab"], "harness.evaluation.tasks"),
    **dict.fromkeys(["cer_stats", "sequence_edits", "slot_type_f1_item", "slot_value_cer_stats", "wer_stats"],
                    "harness.evaluation.metrics"),
    **dict.fromkeys(["Trial", "all_pairs", "equal_error_rate", "min_dcf", "read_trials", "write_scores",
                     "write_trials"],
                    "harness.evaluation.verification"),
    **dict.fromkeys(["check_layer", "frame_cache", "utterance_states"], "harness.evaluation.frames"),
    **dict.fromkeys(["Documents", "query_scores", "standardise"], "harness.evaluation.term_detection"),
    **dict.fromkeys(["QUESST_BETA", "maximum_twv", "query_gains"], "harness.evaluation.twv"),
    **dict.fromkeys(["ExtractPrecision", "ProbeParams", "ProbeSettings", "task_splits"],
                    "harness.evaluation.probe_settings"),
    "ProbedDownstream": "harness.evaluation.probed_downstream",
    **dict.fromkeys(["feature_cache_for", "probe_corpus"], "harness.evaluation.probe"),
    **dict.fromkeys(["MEDIANS", "THRESHOLDS", "ErrorCounts", "activity", "decide", "error_counts", "frame_count",
                     "rttm_lines", "segments", "turn_speakers"], "harness.evaluation.diarization"),
    **dict.fromkeys(["CTCProbeParams", "CTC_PROTOCOLS", "SF_SPECAUG"], "harness.evaluation.ctc_probe"),
    **dict.fromkeys(["ABXScore", "Item", "abx", "read_item_file"], "harness.evaluation.abx"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"harness.api has no {name!r}; the plugin API is harness.api.__all__")
    parent = importlib.import_module(module)
    value = getattr(parent, name) if hasattr(parent, name) else importlib.import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
    from harness.core.errors import CheckpointError, CorpusError, HarnessError, StageError  # noqa: F401
    from harness.core.hookspecs import hookimpl  # noqa: F401
    from harness.core.interfaces import (  # noqa: F401
        Batch,
        CorpusPlugin,
        DownstreamPlugin,
        EvalResult,
        FinetunePlugin,
        FinetuneResult,
        MergePlugin,
        SpecAugSettings,
        Task,
        TaskPlugin,
        TensorSource,
        UpstreamPlugin,
    )
    from harness.core.manifest import PreparedCorpus  # noqa: F401
    from harness.core.model_types import UpstreamModel, UpstreamOutput  # noqa: F401
    from harness.core.plugin import EXECUTION_ONLY, Direction, InputPath, PluginParams, PluginRegistry  # noqa: F401
    from harness.core.seeding import seeded  # noqa: F401
    from harness.core.stage import StageContext  # noqa: F401
    from harness.data import audio, sounds  # noqa: F401
    from harness.data.alignment import IGNORE_LABEL, frame_labels  # noqa: F401
    from harness.data.audioset_csv import (  # noqa: F401
        AudioClass,
        Segment,
        audioset_rows,
        carve_dev,
        read_class_index,
        read_ontology,
        read_segments,
        subtree,
        write_class_index,
        write_segments,
    )
    from harness.data.batching import DynamicBatchSampler, MixedBatchSampler  # noqa: F401
    from harness.data.corpus import (  # noqa: F401
        CorpusRows,
        LocalCorpus,
        LocalCorpusParams,
        checked,
        normalise_text,
        require,
        sample_hours,
        split_by_speaker,
        stable_fraction,
        write_corpus,
    )
    from harness.data.keywords import KEYWORD_COMMANDS, KEYWORD_SILENCE, KEYWORD_UNKNOWN  # noqa: F401
    from harness.data.phones import ARPABET, SIL, TIMIT_39, TIMIT_61_TO_39, strip_stress  # noqa: F401
    from harness.data.waveforms import WaveBatch, WaveformSet, pad_waves  # noqa: F401
    from harness.evaluation.abx import ABXScore, Item, abx, read_item_file  # noqa: F401
    from harness.evaluation.ctc_probe import CTC_PROTOCOLS, SF_SPECAUG, CTCProbeParams  # noqa: F401
    from harness.evaluation.diarization import (  # noqa: F401
        MEDIANS,
        THRESHOLDS,
        ErrorCounts,
        activity,
        decide,
        error_counts,
        frame_count,
        rttm_lines,
        segments,
        turn_speakers,
    )
    from harness.evaluation.frames import check_layer, frame_cache, utterance_states  # noqa: F401
    from harness.evaluation.metrics import (  # noqa: F401
        cer_stats,
        sequence_edits,
        slot_type_f1_item,
        slot_value_cer_stats,
        wer_stats,
    )
    from harness.evaluation.probe import feature_cache_for, probe_corpus  # noqa: F401
    from harness.evaluation.probe_settings import ExtractPrecision, ProbeParams, ProbeSettings, task_splits  # noqa: F401
    from harness.evaluation.probed_downstream import ProbedDownstream  # noqa: F401
    from harness.evaluation.tasks import CTCTask, UtteranceTask, char_vocab  # noqa: F401
    from harness.evaluation.term_detection import Documents, query_scores, standardise  # noqa: F401
    from harness.evaluation.twv import QUESST_BETA, maximum_twv, query_gains  # noqa: F401
    from harness.evaluation.verification import (  # noqa: F401
        Trial,
        all_pairs,
        equal_error_rate,
        min_dcf,
        read_trials,
        write_scores,
        write_trials,
    )
    from harness.merging.task_vectors import (  # noqa: F401
        TaskVectorMerge,
        TaskVectorMergePlugin,
        TrimThresholds,
        interpolation_shortcut,
    )
    from harness.models.checkpoints import load_torch_checkpoint, tensors_only  # noqa: F401
    from harness.models.deferred import DeferredUpstreamPlugin  # noqa: F401
    from harness.models.fairseq import checkpoint_configs, detect_family, encoder_key  # noqa: F401
    from harness.models.fbank import KaldiFbank, add_deltas, reduce_frames, utterance_cmvn  # noqa: F401
    from harness.models.feature_cache import FeatureCache, FrameStore, to_frame_dtype  # noqa: F401
    from harness.models.hf_speech import PretrainingHead, SpeechTransformer, SpeechTransformerPlugin  # noqa: F401
    from harness.models.inference import batched_forward  # noqa: F401
    from harness.models.packed_encoder import resolve_attention  # noqa: F401
    from harness.models.sources import ENCODER_SHAPES, ENCODER_TRAINING, SourceParams, preset_configs  # noqa: F401
    from harness.models.speech_encoder import (  # noqa: F401
        frame_mask,
        load_exact,
        load_own_model,
        mean_pool,
        own_model_files,
        run_encoder,
    )
    from harness.training.loop import fit  # noqa: F401
    from harness.training.pseudo_labels import KMeans, mfcc_frames, sample_rows  # noqa: F401
    from harness.training.stable_ft import (  # noqa: F401
        StableFineTuning,
        finetune_on_task,
        task_batch,
        task_metrics_on_waveforms,
        training_loss,
        training_waveforms,
    )
    from harness.training.stable_ft_params import (  # noqa: F401
        StableFTParams,
        pick_corpus,
        resolve_task,
        split_rows,
        train_config,
    )
