"""The embedded speech corpus: espeak-ng speech with every label the downstream tasks need.

Each utterance is a spoken-language-understanding command in the style of Audio SNIPS (intent,
slots, text; templates in ``plugins/corpora/data/<grammar>.json``: ``sf_grammar``, sentences of five
to twelve words, or ``sf_commands``, short commands with a small slot vocabulary on which a small
slot-filling probe learns), said by one speaker in one speaking style, with phone alignments from
espeak's phoneme events.

**Phones.** The inventory is the 39 ARPAbet phones of the CMU dictionary plus ``sil`` (40 in all:
aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh
sil). espeak's en-us mnemonics map to it by the table in :mod:`plugins.corpora._synth.phonemap`:
stress marks dropped; pauses -> sil; vowels by their US values (``0``/``A:`` -> aa, ``a`` -> ae,
``@``/``V`` -> ah, ``3:`` -> er, ...); r-coloured and centring diphthongs split in two (``A@`` -> aa r,
``e@`` -> eh r, ``@L`` -> ah l); consonant digraphs to ARPAbet (``T`` th, ``D`` dh, ``S`` sh, ``Z`` zh,
``tS`` ch, ``dZ`` jh, ``N`` ng, ``j`` y); the flap ``t#`` -> t. Each phone's start is the sample of
its phoneme event; it ends where the next one starts.

**Speakers.** ``n_speakers`` voices (default 24) built from 16 espeak voice variants, repeated in
further registers when more are asked for (a pitch offset and a vocal-tract scale that moves the
formants, see :data:`REGISTERS`), each with its own base pitch, speaking rate and tract scale.
``n_unseen_speakers`` more voices (other variants) speak only the ``test_unseen`` split.

**Styles** (the ``emotion`` label): neutral, happy, sad, angry, made from speaking rate, pitch,
pitch range, volume and word gap (espeak settings) and voice quality (spectral tilt above 1 kHz,
soft saturation for angry); every utterance jitters each of them (``style_jitter`` scales the
jitter), so styles are learnable but overlap. See :data:`STYLES`.

**Nuisance** (all off with ``clean: true``), per utterance: speed perturbation (±``speed_perturb``,
by resampling, so pitch and formants move too), pitch perturbation (±``pitch_jitter`` espeak
pitch units), reverberation with probability ``reverb_prob`` (RT60 uniform in ``rt60`` seconds,
direct-to-reverberant ratio uniform in ``drr_db``), a random smooth channel EQ (gains uniform in
±``eq_db`` dB at 9 band edges), background noise from :mod:`harness.data.sounds` with probability
``noise_prob`` (SNR uniform in ``snr_db``) and a random level (peak uniform in ``peak``). 50-300 ms
of leading and trailing silence is always added. The defaults were tuned so that linear probes on
80-dim FBank stay well below the ceiling while every task stays learnable; measured with
``benchmarks/corpus_probes.py`` on the default 400 utterances: speaker ID 42 % (chance 4 %), style
60 % (chance 25 %), frame phone 47 % (majority class 19 %); with ``clean: true`` 79 %, 85 %, 67 %.

**Splits.** ``train``/``dev``/``test`` share the seen speakers (speaker ID, phoneme recognition,
ASR, ABX, emotion); ``test_unseen`` holds the unseen voices, on which slot filling is tested
(``task_splits: {"sf": {"test": "test_unseen"}}``) as Audio SNIPS does, and speaker verification
(``asv``) as VoxCeleb1 holds out its test speakers. Every row has a ``fold``
(speaker index modulo ``n_folds``) for emotion recognition by folds of speakers. ``dev.item`` and
``test.item`` are libri-light ABX item files built from the alignments; with ``abx_unseen: true``
``test.item`` also covers ``test_unseen`` (more voices and more utterances per voice, so more
phone contrasts within one context; ABX trains nothing, so every held-out utterance may serve).
With ``abx_words: N`` every voice (or ``abx_word_voices`` of them) also says N lists of the fifteen
hVd words (heed, hid, hayed, ... hoyed; :data:`HVD_WORDS`) in the ``abx_words`` split, which no task
uses and ``test.item`` covers: fifteen vowels in the one context /h _ d/, each said N times by each
of those voices, where sentences rarely repeat a context within one speaker. Isolated vowels are
long (ABX's cost grows with the product of two tokens' frames), hence the choice of voices. The
lists are drawn from their own random stream, so every other utterance is the same with or without
them. With ``keywords: N`` every voice also says N rounds of isolated keywords in the style of Speech
Commands (the ten commands and one other word, and a one-second background clip per round;
:mod:`plugins.corpora._synth.keywords`) in the splits ``ks_train``, ``ks_dev`` and ``ks_test``
(the unseen voices), for keyword spotting; they too come from a stream of their own. With
``qbe_terms: N`` the unseen voices say 2N words of the test sentences alone (those found in the most
sentences), N in ``qbe_dev`` and N in ``qbe_test``, each row listing the test sentences its word occurs
in (``occurs_in``), for query-by-example search over the test split. With ``mixtures: N`` pairs of
rendered utterances of two voices are added into two-speaker recordings with their speech turns
(``turns``), for speaker diarization: N in ``sd_train``, N/4 in ``sd_dev`` and ``sd_test`` (unseen
voices); see :mod:`plugins.corpora._synth.mixtures`.

**Determinism.** The plan (speaker, style, text, seeds) is drawn in one process from ``seed``;
each utterance is synthesized in a freshly forked child of an espeak render server
(:mod:`plugins.corpora._synth.server`) and perturbed from its own seed, so the bytes depend neither
on the number of workers nor on the order of work.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness import hookimpl
from harness.api import CorpusPlugin, CorpusRows, PluginParams, StageContext, write_corpus
from plugins.corpora._synth import keywords, mixtures, nuisance, phonemap, text
from plugins.corpora._synth.espeak import Voice
from plugins.corpora._synth.render import Spec
from plugins.corpora._synth.server import RenderPool

log = logging.getLogger("harness.corpora.synthetic")

SEEN_VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "Andy", "linda", "steph")
UNSEEN_VOICES = ("Lee", "john", "travis", "Annie")
#: successive registers of one voice variant: (pitch offset in espeak units, vocal tract scale);
#: the scale moves the formants by resampling (speed) while espeak's rate keeps the timing
REGISTERS = ((0.0, 1.0), (12.0, 1.07), (-10.0, 0.93), (22.0, 1.12))

#: style -> (rate factor, pitch offset, pitch range, volume, word gap in 10 ms units,
#: spectral tilt in dB above 1 kHz, saturation drive)
STYLES: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "neutral": (1.00, 0.0, 45.0, 100.0, 0.0, 0.0, 0.0),
    "happy": (1.18, 14.0, 90.0, 120.0, 0.0, 4.0, 0.0),
    "sad": (0.78, -8.0, 8.0, 70.0, 2.0, -8.0, 0.0),
    "angry": (1.12, 5.0, 70.0, 170.0, 1.0, 8.0, 3.0),
}
#: per-utterance jitter (standard deviation) of each style dimension at style_jitter = 1
STYLE_JITTER = (0.05, 2.5, 8.0, 10.0, 0.6, 1.0, 0.4)
SPLITS = ("train", "dev", "test", "test_unseen")
#: the spoken queries' splits (``qbe_terms``); their documents are the test split
QBE_SPLITS = ("qbe_dev", "qbe_test")
#: the ABX word lists' split (``abx_words``): in no task's splits, only in the test item file
WORDS_SPLIT = "abx_words"
#: the lists are read faster than neutral speech: isolated vowels are long, and ABX's cost grows
#: with the product of two tokens' frames
WORD_LIST_RATE = 1.4
#: the hVd words: fifteen vowels between /h/ and /d/ (espeak en-us says them as hh V d, a pause
#: between words, so each list gives fifteen vowel items in one context and no other item)
HVD_WORDS = ("heed", "hid", "hayed", "head", "had", "hod", "hawed", "hoed", "hood", "who'd", "hud", "heard",
             "hide", "how'd", "hoyed")


class SyntheticParams(PluginParams):
    """Size, speakers, splits and nuisance of the embedded corpus (see the module docstring)."""

    seed: int = 0
    grammar: Literal["sf_grammar", "sf_commands"] = Field(
        "sf_grammar", description="sentence templates: SNIPS-like sentences, or short commands (plugins/corpora/data)"
    )
    n_utterances: int = Field(400, ge=8, description="utterances over all splits")
    n_speakers: int = Field(24, ge=2, description="voices shared by train/dev/test")
    n_unseen_speakers: int = Field(4, ge=1, description="held-out voices of the test_unseen split")
    n_folds: int = Field(4, ge=2, description="emotion folds (by speaker)")
    dev_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    abx_unseen: bool = Field(False, description="the ABX test item file also holds the test_unseen split")
    abx_words: int = Field(
        0, ge=0, exclude_if=lambda n: n == 0,
        description="lists of the 15 hVd words each voice says in an extra split, added to the ABX test "
        "item file (vowel contrasts within one context, each word once per list)",
    )
    abx_word_voices: int | None = Field(
        None, ge=2, exclude_if=lambda n: n is None,
        description="how many voices say the hVd lists, spread evenly over all voices (default: every voice)",
    )
    keywords: int = Field(
        0, ge=0, exclude_if=lambda n: n == 0,
        description="rounds of keyword clips per voice for keyword spotting (the ten Speech Commands words, one "
        "other word and one background clip each) in the splits ks_train, ks_dev and ks_test",
    )
    qbe_terms: int = Field(
        0, ge=0, exclude_if=lambda n: n == 0,
        description="spoken queries per query split for query-by-example term detection: words of the test "
        "sentences said alone by the unseen voices, in qbe_dev and qbe_test (the documents: the test split)",
    )
    mixtures: int = Field(
        0, ge=0, exclude_if=lambda n: n == 0,
        description="two-speaker recordings for speaker diarization, mixed from rendered utterances: N in "
        "sd_train, N/4 (at least 2) in sd_dev and sd_test (unseen voices)",
    )
    clean: bool = Field(False, description="no nuisance at all")
    style_jitter: float = Field(1.0, ge=0)
    speed_perturb: float = Field(0.05, ge=0, lt=0.5)
    pitch_jitter: float = Field(5.0, ge=0)
    reverb_prob: float = Field(0.7, ge=0, le=1)
    rt60: tuple[float, float] = (0.1, 0.6)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    eq_db: float = Field(4.0, ge=0)
    noise_prob: float = Field(1.0, ge=0, le=1)
    snr_db: tuple[float, float] = (5.0, 25.0)
    peak: tuple[float, float] = (0.2, 0.9)


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str
    pitch: float
    rate: float
    tract: float  # > 1: a shorter vocal tract (formants and pitch scaled up)
    index: int
    seen: bool


def make_speakers(p: SyntheticParams, rng: np.random.Generator) -> list[Speaker]:
    out = []
    for k in range(p.n_speakers + p.n_unseen_speakers):
        seen = k < p.n_speakers
        j = k if seen else k - p.n_speakers
        pool = SEEN_VOICES if seen else UNSEEN_VOICES
        cycle = j // len(pool)
        pitch_offset, tract = REGISTERS[cycle % len(REGISTERS)]
        pitch = 50 + pitch_offset + 3 * (cycle // len(REGISTERS)) + rng.uniform(-4, 4)
        out.append(Speaker(f"{'s' if seen else 'u'}{j + 1:02d}", pool[j % len(pool)], pitch,
                           rng.uniform(0.9, 1.1), tract * rng.uniform(0.98, 1.02), k, seen))  # fmt: skip
    return out


def make_plan(p: SyntheticParams) -> list[Spec]:
    """The utterances to render, drawn from ``p.seed`` in one fixed order.

    Each shared voice needs three utterances (train, dev, test) and the unseen split one voice. When
    ``n_utterances`` is too few for the voices asked for, some split would come out empty; the plan is
    then drawn with as many shared voices as the utterances allow (at least 2) and one unseen voice,
    and the log says so. Plans that fill every split are never changed.
    """
    specs = _draw_plan(p)
    if not set(SPLITS) <= {s.split for s in specs}:
        seen = max(2, min(p.n_speakers, p.n_utterances // 3 - 1))
        log.info("synthetic: %d utterances are too few for %d + %d voices; using %d + 1 so that every split "
                 "gets utterances.", p.n_utterances, p.n_speakers, p.n_unseen_speakers, seen)
        specs = _draw_plan(p.model_copy(update={"n_speakers": seen, "n_unseen_speakers": 1}))
    return specs


def _draw_plan(p: SyntheticParams) -> list[Spec]:
    rng = np.random.default_rng([p.seed, 20240917])
    speakers = make_speakers(p, rng)
    by_speaker: dict[str, list[int]] = {s.name: [] for s in speakers}
    for i in range(p.n_utterances):
        by_speaker[speakers[i % len(speakers)].name].append(i)
    split_of: dict[int, str] = {}
    style_of: dict[int, str] = {}
    styles = list(STYLES)
    for spk in speakers:
        idx = by_speaker[spk.name]
        n_test = max(1, round(len(idx) * p.test_fraction))
        n_dev = max(1, round(len(idx) * p.dev_fraction))
        for rank, k in enumerate(rng.permutation(len(idx))):
            if not spk.seen:
                split_of[idx[k]] = "test_unseen"
            else:
                split_of[idx[k]] = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
        offset = int(rng.integers(len(styles)))
        for rank, k in enumerate(rng.permutation(len(idx))):  # styles balanced within each speaker
            style_of[idx[k]] = styles[(rank + offset) % len(styles)]
    specs = []
    for i in range(p.n_utterances):
        spk = speakers[i % len(speakers)]
        sentence = text.sample_sentence(rng, name=p.grammar)
        style = STYLES[style_of[i]]
        jitter = rng.standard_normal(len(STYLE_JITTER)) * np.array(STYLE_JITTER) * p.style_jitter
        pitch_jitter = rng.uniform(-1, 1) * (0.0 if p.clean else p.pitch_jitter)
        speed = 1.0 + rng.uniform(-1, 1) * (0.0 if p.clean else p.speed_perturb)
        voice = Voice(
            name=f"en-us+{spk.voice}",
            rate=int(np.clip(round(175 * spk.rate * style[0] * (1 + jitter[0]) / spk.tract), 80, 400)),
            pitch=int(np.clip(round(spk.pitch + style[1] + jitter[1] + pitch_jitter), 0, 100)),
            range=int(np.clip(round(style[2] + jitter[2]), 0, 100)),
            volume=int(np.clip(round(style[3] + jitter[3]), 40, 200)),
            wordgap=int(np.clip(round(style[4] + jitter[4]), 0, 6)),
        )
        specs.append(
            Spec(
                id=f"{spk.name}-{i:05d}",
                split=split_of[i],
                speaker=spk.name,
                fold=spk.index % p.n_folds,
                emotion=style_of[i],
                text=sentence.text,
                intent=sentence.intent,
                slots=sentence.slots,
                voice=voice,
                seed=int(rng.integers(2**31 - 1)),
                speed=float(speed * spk.tract),
                pad=(float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.05, 0.3))),
                tilt_db=float(style[5] + jitter[5]),
                drive=float(max(0.0, style[6] + jitter[6])) if style[6] else 0.0,
            )
        )
    return specs + _word_lists(p, speakers) + _keyword_clips(p, speakers) + _queries(p, speakers, specs)


def _word_lists(p: SyntheticParams, speakers: list[Speaker]) -> list[Spec]:
    """``abx_words`` lists of the hVd words per voice (every voice, or ``abx_word_voices`` of them
    spread evenly), in the neutral style, each list in its own order; drawn from a stream of their
    own, so the other utterances stay as they are."""
    rng = np.random.default_rng([p.seed, 20240917, 2])
    rate, pitch, pitch_range, volume, wordgap, _, _ = STYLES["neutral"]
    voices = len(speakers) if p.abx_word_voices is None else min(p.abx_word_voices, len(speakers))
    chosen = sorted({int(round(i)) for i in np.linspace(0, len(speakers) - 1, voices)})
    specs = []
    for spk in (speakers[i] for i in chosen):
        for k in range(p.abx_words):
            words = [HVD_WORDS[i] for i in rng.permutation(len(HVD_WORDS))]
            speed = 1.0 + rng.uniform(-1, 1) * (0.0 if p.clean else p.speed_perturb)
            voice = Voice(
                name=f"en-us+{spk.voice}",
                rate=int(np.clip(round(175 * spk.rate * rate * WORD_LIST_RATE / spk.tract), 80, 400)),
                pitch=int(np.clip(round(spk.pitch + pitch), 0, 100)),
                range=int(pitch_range), volume=int(volume), wordgap=int(wordgap),
            )  # fmt: skip
            specs.append(
                Spec(
                    id=f"{spk.name}-words{k:02d}", split=WORDS_SPLIT, speaker=spk.name, fold=spk.index % p.n_folds,
                    emotion="neutral", text=", ".join(words) + ".", intent="", slots=(), voice=voice,
                    seed=int(rng.integers(2**31 - 1)), speed=float(speed * spk.tract),
                    pad=(float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.05, 0.3))), tilt_db=0.0, drive=0.0,
                )  # fmt: skip
            )
    return specs


def _keyword_clips(p: SyntheticParams, speakers: list[Speaker]) -> list[Spec]:
    """``keywords`` rounds of isolated words per voice (:mod:`plugins.corpora._synth.keywords`), in the
    neutral style with each utterance's own pitch and speed nuisance; drawn from a stream of their
    own, so the other utterances stay as they are. The rounds' silence clips are in
    :func:`silence_clips`."""
    rng = np.random.default_rng([p.seed, 20240917, 3])
    rate, pitch, pitch_range, volume, wordgap, _, _ = STYLES["neutral"]
    split_of = keywords.voice_splits([s.name for s in speakers if s.seen], [s.name for s in speakers if not s.seen])
    specs = []
    for spk in speakers:
        for k in range(p.keywords):
            for n, word in enumerate(keywords.round_words(rng)):
                speed = 1.0 + rng.uniform(-1, 1) * (0.0 if p.clean else p.speed_perturb)
                pitch_jitter = rng.uniform(-1, 1) * (0.0 if p.clean else p.pitch_jitter)
                voice = Voice(
                    name=f"en-us+{spk.voice}",
                    rate=int(np.clip(round(175 * spk.rate * rate / spk.tract), 80, 400)),
                    pitch=int(np.clip(round(spk.pitch + pitch + pitch_jitter), 0, 100)),
                    range=int(pitch_range), volume=int(volume), wordgap=int(wordgap),
                )  # fmt: skip
                specs.append(
                    Spec(
                        id=f"{spk.name}-kw{k:02d}-{n:02d}", split=split_of[spk.name], speaker=spk.name,
                        fold=spk.index % p.n_folds, emotion="neutral", text=word, intent="", slots=(), voice=voice,
                        seed=int(rng.integers(2**31 - 1)), speed=float(speed * spk.tract),
                        pad=(float(rng.uniform(0.05, 0.4)), float(rng.uniform(0.05, 0.3))),
                    )  # fmt: skip
                )
    return specs


def _queries(p: SyntheticParams, speakers: list[Speaker], specs: list[Spec]) -> list[Spec]:
    """``qbe_terms`` spoken queries per query split: the words of three letters or more found in the most
    test sentences (ties alphabetical), alternately in ``qbe_dev`` and ``qbe_test``, each said alone by
    one unseen voice in the neutral style."""
    rng = np.random.default_rng([p.seed, 20240917, 5])
    found = Counter(w for s in specs if s.split == "test" for w in set(s.text.split()) if len(w) >= 3)
    words = sorted(found, key=lambda w: (-found[w], w))[: 2 * p.qbe_terms]
    unseen = [s for s in speakers if not s.seen]
    rate, pitch, pitch_range, volume, wordgap, _, _ = STYLES["neutral"]
    out = []
    for k, word in enumerate(words):
        spk = unseen[k % len(unseen)]
        voice = Voice(name=f"en-us+{spk.voice}", rate=int(np.clip(round(175 * spk.rate * rate / spk.tract), 80, 400)),
                      pitch=int(np.clip(round(spk.pitch + pitch), 0, 100)), range=int(pitch_range),
                      volume=int(volume), wordgap=int(wordgap))  # fmt: skip
        out.append(Spec(id=f"{spk.name}-qbe{k:03d}", split=QBE_SPLITS[k % 2], speaker=spk.name,
                        fold=spk.index % p.n_folds, emotion="neutral", text=word, intent="", slots=(), voice=voice,
                        seed=int(rng.integers(2**31 - 1)), speed=float(spk.tract),
                        pad=(float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.05, 0.2)))))  # fmt: skip
    return out


def silence_clips(p: SyntheticParams, specs: list[Spec], out_dir: Path) -> list[dict[str, Any]]:
    """One background clip per voice and keyword round of ``specs``, written now (rows with ``split``)."""
    rng = np.random.default_rng([p.seed, 20240917, 4])
    rounds = sorted({(s.id.rsplit("-", 1)[0], s.split, s.speaker) for s in specs if s.split in keywords.SPLITS})
    return [keywords.write_silence(f"{prefix}-sil", split, speaker, int(rng.integers(2**31 - 1)), out_dir)
            for prefix, split, speaker in rounds]  # fmt: skip


def noise_config(p: SyntheticParams) -> nuisance.Nuisance | None:
    if p.clean:
        return None
    return nuisance.Nuisance(
        reverb_prob=p.reverb_prob, rt60=p.rt60, drr_db=p.drr_db, eq_db=p.eq_db,
        noise_prob=p.noise_prob, snr_db=p.snr_db, peak=p.peak,
    )  # fmt: skip


def worker_count() -> int:
    """Cores this process may use (at most 4); the output does not depend on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def generate(
    p: SyntheticParams, out_dir: Path, ctx: StageContext | None = None, workers: int | None = None
) -> list[dict[str, Any]]:
    """Render every utterance of the plan into ``out_dir/wav/<split>/``; return the rows (with ``split``)."""
    specs = make_plan(p)
    for split in sorted({s.split for s in specs}):
        (out_dir / "wav" / split).mkdir(parents=True, exist_ok=True)
    cfg = noise_config(p)
    workers = workers or worker_count()
    start = time.perf_counter()
    progress = (lambda done, total: ctx.progress(done, total)) if ctx is not None else None
    with RenderPool(workers) as pool:
        rows = list(pool.map([(s, str(out_dir), cfg) for s in specs], on_done=progress))
    documents = [r for r in rows if r["split"] == "test"]
    for row in rows:
        if row["split"] in keywords.SPLITS:
            row["keyword"] = row["text"]
        if row["split"] in QBE_SPLITS:
            row["occurs_in"] = sorted(d["id"] for d in documents if row["text"] in d["text"].split())
    rows += silence_clips(p, specs, out_dir)
    if p.mixtures:
        rows += mixtures.make_mixtures(p.mixtures, rows, [p.seed, 20240917, 6], out_dir)
    seconds = sum(r["duration"] for r in rows)
    elapsed = time.perf_counter() - start
    log.info(
        "synthetic: %d utterances, %.0f s of audio in %.1f s (%.0fx real time, %d workers)",
        len(rows), seconds, elapsed, seconds / max(elapsed, 1e-9), workers,
    )  # fmt: skip
    return rows


class SyntheticCorpus(CorpusPlugin[SyntheticParams]):
    name = "synthetic"
    version = "1"
    summary = "Embedded espeak-ng speech: phones, speakers, styles, intents/slots, text; no data needed"
    Params = SyntheticParams
    label_options = {"keyword": "keywords: N (N rounds of keyword clips per voice)",
                     "occurs_in": "qbe_terms: N (N spoken queries per query split)",
                     "turns": "mixtures: N (N two-speaker recordings for diarization)"}

    def provided_labels(self, params: SyntheticParams) -> tuple[str, ...]:
        labels = ("speaker", "fold", "emotion", "text", "intent", "slots", "phones")
        return (labels + ("keyword",) * bool(params.keywords) + ("occurs_in",) * bool(params.qbe_terms)
                + ("turns",) * bool(params.mixtures))

    def prepare(self, params: SyntheticParams, out_dir: Path, ctx: StageContext) -> None:
        rows = generate(params, out_dir, ctx)
        splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for row in rows:
            splits.setdefault(row.pop("split"), []).append(row)
        extra = (("test_unseen",) if params.abx_unseen else ()) + ((WORDS_SPLIT,) if params.abx_words else ())
        found = CorpusRows(
            splits,
            vocab={
                "phones": sorted(phonemap.INVENTORY),
                "speakers": sorted({r["speaker"] for r in splits["train"]}),
                "emotions": sorted(STYLES),
                "intents": text.intents(params.grammar),
                "slot_types": text.slot_types(params.grammar),
            },
            task_splits={"sf": {"test": "test_unseen"}, "asv": {"test": "test_unseen"},
                         **({"ks": dict(zip(("train", "dev", "test"), keywords.SPLITS, strict=True))}
                            if params.keywords else {}),
                         **({"qbe": {"documents": "test", "dev": QBE_SPLITS[0], "test": QBE_SPLITS[1]}}
                            if params.qbe_terms else {}),
                         **({"sd": dict(zip(("train", "dev", "test"), mixtures.SPLITS, strict=True))}
                            if params.mixtures else {})},
            extra_meta={"folds": params.n_folds, "params": params.model_dump(mode="json")},
            abx_splits=("dev", "test"),
            abx_extra_splits={"test": extra} if extra else {},
        )
        write_corpus(out_dir, self.name, found)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SyntheticCorpus)
