"""Errors a user can cause. The CLI prints their message as one sentence and exits with code 2."""

from __future__ import annotations


class HarnessError(Exception):
    """A failure caused by the user's input: a recipe typo, a missing file, a bad checkpoint.

    The message is one sentence that names the thing and says what to do.
    """

    exit_code = 2


class RecipeError(HarnessError):
    """The recipe is malformed; the message names the key path and the YAML line."""


class PluginError(HarnessError):
    """A plugin could not be found, loaded or registered."""


class AudioError(HarnessError):
    """An audio file is unreadable, empty, too short, non-finite or silent."""


class CheckpointError(HarnessError):
    """A checkpoint is unsafe, truncated, of the wrong family or missing keys."""


class CorpusError(HarnessError):
    """A corpus root does not have the layout its distribution ships."""


class StageError(HarnessError):
    """A stage failed in a way the user can fix (bad parameters for this data, too many NaN losses)."""


class StopRequested(Exception):
    """A stage stopped itself cleanly after saving a checkpoint (thermal hard limit); a rerun resumes."""
