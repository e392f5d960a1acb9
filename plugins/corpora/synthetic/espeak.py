"""espeak-ng through ctypes (the library and data ship in the ``espeakng-loader`` wheel).

Synchronous mode: the synthesis callback receives the samples and, with phoneme events switched
on, one event per phoneme carrying its start sample. espeak keeps state between calls (random
generator, voice echo buffer, intonation state): measured here, the same text gives different
samples on the second call even with ``espeak_ng_SetRandSeed``. :func:`synthesize` therefore runs
every utterance in a freshly forked child of the process that initialised the library, so each
utterance starts from the same state whatever came before it and whichever process runs it.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import struct
from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError

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

    def synthesize_here(self, text: str, voice: Voice, seed: int) -> Synthesis:
        """Synthesize in this process (its result depends on what this process synthesized before)."""
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

    def synthesize(self, text: str, voice: Voice, seed: int) -> Synthesis:
        """Synthesize in a forked child, so the result depends on the arguments only."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize, send, exit without running any cleanup of the parent
            code = 0
            try:
                os.close(read_fd)
                payload = pickle.dumps(self.synthesize_here(text, voice, seed), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as f:
                    f.write(struct.pack("<Q", len(payload)) + payload)
            except BaseException:  # noqa: BLE001 - any failure becomes a nonzero exit code
                code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or len(data) < 8:
            raise HarnessError(f"espeak-ng failed to synthesize {text!r} with voice {voice.name!r}.")
        (size,) = struct.unpack("<Q", data[:8])
        return pickle.loads(data[8 : 8 + size])  # our own child's bytes, not outside input
