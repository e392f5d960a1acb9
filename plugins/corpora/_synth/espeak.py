"""espeak-ng through ctypes (the library and data ship in the ``espeakng-loader`` wheel).

Synchronous mode: the synthesis callback receives the samples and, with phoneme events switched
on, one event per phoneme carrying its start sample. espeak keeps state between calls (random
generator, voice echo buffer, wave generator state): measured here, the same text gives different
samples on the second call even with ``espeak_ng_SetRandSeed``, with libc ``srand`` or after
``espeak_Terminate`` and a new ``espeak_Initialize``. So every utterance is synthesized in a freshly
forked child of a process that initialised the library and never synthesized itself
(:mod:`plugins.corpora._synth.server`): each starts from the same state whatever came before it.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from harness.api import HarnessError

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """espeak voice settings for one utterance (espeak's own units)."""

    name: str  # e.g. "en-us+m3"
    rate: int = 175  # words per minute
    pitch: int = 50  # 0-100
    range: int = 50  # 0-100, pitch range
    volume: int = 100  # 0-200
    wordgap: int = 0  # pause between words, in units of 10 ms


@dataclass
class Synthesis:
    """Samples at ``sample_rate`` and the phoneme events as (espeak mnemonic, start sample)."""

    samples: np.ndarray  # int16
    sample_rate: int
    phonemes: list[tuple[str, int]]


class Espeak:
    """One initialised espeak-ng library in this process."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:  # pragma: no cover - a declared dependency
            raise HarnessError(
                "the synthetic corpus needs the espeakng-loader package; install it with `pip install espeakng-loader`."
            ) from None
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = int(
            self._lib.espeak_Initialize(
                AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
            )
        )
        if self.sample_rate <= 0:
            raise HarnessError("espeak-ng failed to initialise; reinstall espeakng-loader.")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:  # type: ignore[no-untyped-def]
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                self._events.append((ev.id.string.decode("utf-8", "replace"), int(ev.sample)))
            i += 1
        return 0

    def preload(self, voice: str = "en-us") -> None:
        """Load a voice and its dictionary, so that forked children do not each read them from disk.

        Measured: synthesis in a child gives the same samples with or without this.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise HarnessError(f"espeak-ng has no voice {voice!r}; reinstall espeakng-loader.")

    def synthesize(self, text: str, voice: Voice, seed: int) -> Synthesis:
        """Synthesize ``text``. The samples depend on what this process synthesized before, so call
        it once per freshly forked child (:mod:`plugins.corpora._synth.server` does)."""
        self._chunks, self._events = [], []
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise HarnessError(f"espeak-ng has no voice {voice.name!r}; pick another voice variant.")
        for key, value in (("rate", voice.rate), ("volume", voice.volume), ("pitch", voice.pitch),
                           ("range", voice.range), ("wordgap", voice.wordgap)):  # fmt: skip
            self._lib.espeak_SetParameter(PARAM[key], int(value), 0)
        self._lib.espeak_ng_SetRandSeed(int(seed))
        data = text.encode("utf-8")
        self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Synthesis(samples.astype(np.int16, copy=False), self.sample_rate, list(self._events))
