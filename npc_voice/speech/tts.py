"""Text to 16 kHz speech with word and viseme timing, through eSpeak NG driven by ctypes.

eSpeak NG is small, fast (far faster than real time on one core) and needs no model weights, which is
what a sidecar serving many NPCs wants. Its library is one global state machine, so the process has
exactly one engine behind one lock; `Synthesizer` objects are thin handles onto it and may be used
from any thread. The binding below follows `speak_lib.h` (API revision 12) field by field.
"""

from __future__ import annotations

import bisect
import ctypes
import re
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import espeakng_loader
import numpy as np
import soxr

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.speech.visemes import SILENCE, phoneme_to_viseme

# ---------------------------------------------------------------- speak_lib.h

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data is missing
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_EVENT_END = 5
_EVENT_PHONEME = 7

_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4

RATE_MIN, RATE_MAX = 80, 450  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM, words per minute


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),  # WORD, SENTENCE
        ("name", ctypes.c_char_p),  # MARK, PLAY
        ("string", ctypes.c_char * 8),  # PHONEME: mnemonic, NUL-terminated unless all 8 bytes are used
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),  # espeak_EVENT_TYPE
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters (not bytes) from the start, 1-based
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms into this message's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated name)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the signatures we call, so ctypes converts (and checks) arguments instead of guessing."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))


def _voice_languages(address: int) -> list[str]:
    """Decode the `languages` field of an espeak_VOICE."""
    names = []
    while ctypes.c_ubyte.from_address(address).value != 0:  # priority byte; 0 ends the list
        name = ctypes.string_at(address + 1)
        names.append(name.decode("utf-8", "replace"))
        address += 2 + len(name)
    return names


# ---------------------------------------------------------------- settings and results


_LIMITS = (("pitch", 0, 100), ("rate", RATE_MIN, RATE_MAX), ("volume", 0, 200), ("pitch_range", 0, 100))


ENGINES = ("espeak-ng", "piper")
TIMBRE_LIMIT = 4.0  # semitones of formant shift either way; beyond it a voice sounds like a cartoon


@dataclass(frozen=True, kw_only=True)
class VoiceSettings:
    """How an NPC sounds.

    ``engine`` is ``espeak-ng`` or ``piper``. ``voice`` is an eSpeak name, a language optionally
    +variant (``en-us+m3``): the voice itself for eSpeak NG, and the fallback when a Piper ``model``
    (a voice name such as ``en_US-joe-medium``) is missing. pitch, rate, volume and pitch_range mean the
    same for both engines (``npc_voice.speech.piper`` maps them onto a neural voice); ``timbre`` shifts the
    formants in semitones (- a bigger, darker speaker, + a smaller, brighter one).
    """

    voice: str = "en-us"
    pitch: int = 50  # 0-100, 50 is the voice's normal base pitch
    rate: int = 175  # words per minute, RATE_MIN-RATE_MAX
    volume: int = 100  # 0-200; 100 peaks at -3 dBFS
    pitch_range: int = 50  # 0-100; 0 is monotone, 50 normal
    engine: str = "espeak-ng"
    model: str = ""  # the Piper voice's name, for engine piper
    timbre: float = 0.0  # formant shift, semitones, -TIMBRE_LIMIT..TIMBRE_LIMIT

    def __post_init__(self) -> None:
        for name, low, high in _LIMITS:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} outside {low}..{high}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine={self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.engine == "piper" and not self.model:
            raise ValueError("engine piper needs a model (a Piper voice name, e.g. en_US-joe-medium)")
        if not -TIMBRE_LIMIT <= self.timbre <= TIMBRE_LIMIT:
            raise ValueError(f"timbre={self.timbre} outside {-TIMBRE_LIMIT}..{TIMBRE_LIMIT}")

    def shifted(self, *, pitch: int = 0, rate: int = 0, volume: int = 0,
                pitch_range: int = 0) -> VoiceSettings:
        """These settings moved by the given deltas, clamped to range (emotion colours the voice)."""
        moved = {name: min(high, max(low, getattr(self, name) + delta)) for (name, low, high), delta in
                 zip(_LIMITS, (pitch, rate, volume, pitch_range), strict=True)}
        return replace(self, **moved)

    def as_espeak(self) -> VoiceSettings:
        """The same settings spoken by eSpeak NG (a Piper voice's fallback)."""
        return replace(self, engine="espeak-ng", model="")


@dataclass
class Utterance:
    """Audio for one piece of text, with the timing a game needs for subtitles and lip-sync."""

    text: str
    audio: np.ndarray  # int16, mono, SAMPLE_RATE
    # (start s, word as written in `text`: its punctuation and capitals kept, see `written_words`)
    words: list[tuple[float, str]] = field(default_factory=list)
    visemes: list[tuple[float, str]] = field(default_factory=list)  # (start s, viseme id), held till the next

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / SAMPLE_RATE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono int16 PCM as a WAV file (for `persona say` and listening tests)."""
    pcm = np.asarray(audio, dtype=np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


# ---------------------------------------------------------------- the process-wide engine


class _RawEvent(NamedTuple):
    kind: int
    text_index: int  # 0-based character index into the synthesised text
    seconds: float  # into the untrimmed eSpeak audio
    phoneme: str


class _Espeak:
    """The single eSpeak NG instance of this process. Callers must hold `_ENGINE_LOCK` for every method."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        _bind(self._lib)
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                           espeakng_loader.get_data_path().encode(),
                                           _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}), data: {espeakng_loader.get_data_path()}")
        self.sample_rate = rate
        self._callback = _SynthCallback(self._on_synth)  # referenced here so it outlives every synthesis
        self._lib.espeak_SetSynthCallback(self._callback)
        self.languages, self.variants = self._list_voices()
        self._selected: str | None = None
        self._pcm: list[np.ndarray] = []
        self._events: list[_RawEvent] = []

    def _list_voices(self) -> tuple[list[str], list[str]]:
        languages: set[str] = set()
        for voice in self._voices(None):
            languages.update(_voice_languages(voice.languages))
        spec = _Voice()
        spec.languages = ctypes.cast(ctypes.c_char_p(b"variant"), ctypes.c_void_p)
        variants = {voice.identifier.decode().rsplit("/", 1)[-1] for voice in self._voices(spec)}
        return sorted(languages), sorted(variants)

    def _voices(self, spec: _Voice | None) -> list[_Voice]:
        table = self._lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        voices = []
        while table[len(voices)]:
            voices.append(table[len(voices)].contents)
        return voices

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        """eSpeak hands over each buffer of audio with the events that fall in it; keep both, never abort."""
        if wav and count > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type in (_EVENT_WORD, _EVENT_PHONEME, _EVENT_SENTENCE, _EVENT_END):
                phoneme = event.id.string.decode("utf-8", "replace") if event.type == _EVENT_PHONEME else ""
                self._events.append(_RawEvent(event.type, event.text_position - 1,
                                              event.audio_position / 1000.0, phoneme))
            i += 1
        return 0

    def _select(self, settings: VoiceSettings) -> None:
        if settings.voice != self._selected:
            language, _, variant = settings.voice.partition("+")
            if language.lower() not in self.languages:
                raise ValueError(f"unknown eSpeak language {language!r} in voice {settings.voice!r}")
            if variant and variant not in self.variants:
                raise ValueError(f"unknown eSpeak variant {variant!r} in voice {settings.voice!r}")
            if self._lib.espeak_SetVoiceByName(settings.voice.encode()) != _EE_OK:
                raise ValueError(f"eSpeak could not select voice {settings.voice!r}")
            self._selected = settings.voice
        for parameter, value in ((_PARAM_RATE, settings.rate), (_PARAM_VOLUME, settings.volume),
                                 (_PARAM_PITCH, settings.pitch), (_PARAM_RANGE, settings.pitch_range)):
            self._lib.espeak_SetParameter(parameter, value, 0)

    def synth(self, text: str, settings: VoiceSettings) -> tuple[np.ndarray, list[_RawEvent]]:
        """Raw eSpeak output for `text`: int16 PCM at `sample_rate` and the events, in order."""
        self._select(settings)
        self._pcm, self._events = [], []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        pcm, events = self._pcm, self._events
        self._pcm, self._events = [], []
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        return (np.concatenate(pcm) if pcm else np.zeros(0, np.int16)), events


_ENGINE_LOCK = threading.Lock()
_engine: _Espeak | None = None


def _shared_engine() -> _Espeak:
    global _engine
    with _ENGINE_LOCK:
        if _engine is None:
            _engine = _Espeak()
        return _engine


# ---------------------------------------------------------------- text handling

_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "capt", "lt", "sgt",
                            "gen", "col", "vs", "etc", "e.g", "i.e", "no", "approx"})
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """Cut text at sentence ends (.!?… before a space, or a blank line), except after common abbreviations."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        words_before = text[start:match.start()].split()
        if match.group().startswith(".") and words_before and words_before[-1].lower() in _ABBREVIATIONS:
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if any(ch.isalnum() for ch in sentence)]


def strip_punctuation(token: str) -> str:
    """A whitespace token without the punctuation around it; inner ' and - stay (don't, e-mail)."""
    start, end = 0, len(token)
    while start < end and not token[start].isalnum():
        start += 1
    while end > start and not token[end - 1].isalnum():
        end -= 1
    return token[start:end]


def written_words(text: str) -> list[str]:
    """The words of `text` as a subtitle shows them, one per whitespace token with a letter or digit in it: as
    written, punctuation and capitals kept ("Aye,", "that.", "here!"). A token of punctuation only ("—", "...")
    goes with the word before it (before the first word: with that word), so joined by spaces they give the
    text back. The synthesisers time the same words stripped (`strip_punctuation`): one timed word per entry.
    """
    shown: list[str] = []
    lead: list[str] = []
    for token in text.split():
        if strip_punctuation(token):
            shown.append(" ".join([*lead, token]))
            lead = []
        elif shown:
            shown[-1] = f"{shown[-1]} {token}"
        else:
            lead.append(token)
    return shown


def _word_times(text: str, events: list[_RawEvent], offset: float,
                speech_end: float) -> list[tuple[float, str]]:
    """Start times of the words of `text`, each as written there (subtitles: `written_words`).

    eSpeak reports a word event with the character position where it started reading, but not one
    event per written word: its `length` is unreliable (1 for "I've"), "42" gives two events (forty,
    two) and common pairs are read as one ("of the", "out of"). So each whitespace token of the text
    takes the time of the first event inside it; a token with no event of its own gets a time
    interpolated by character position between its neighbours (the end of speech closes the line).
    """
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    ends = [end for _, end in tokens]
    anchors: dict[int, float] = {}
    for event in events:
        if event.kind == _EVENT_WORD:
            index = bisect.bisect_right(ends, event.text_index)  # the first token ending after the position
            if index < len(tokens):
                anchors.setdefault(index, max(0.0, event.seconds - offset))
    known = sorted(anchors.items())
    positions = [0.0] + [float(tokens[i][0]) for i, _ in known] + [float(len(text))]
    times = [0.0] + [t for _, t in known] + [max(speech_end, known[-1][1] if known else 0.0)]
    times = list(np.maximum.accumulate(times))
    shown = iter(written_words(text))
    words: list[tuple[float, str]] = []
    for index, (start, end) in enumerate(tokens):
        if strip_punctuation(text[start:end]):
            time = anchors.get(index, float(np.interp(start, positions, times)))
            words.append((round(time, 4), next(shown)))
    return words


def _viseme_track(events: list[_RawEvent], offset: float, duration: float) -> list[tuple[float, str]]:
    """Viseme changes from phoneme events: on the trimmed audio, repeats merged, closed at both ends."""
    track: list[tuple[float, str]] = [(0.0, SILENCE)]
    for event in events:
        if event.kind != _EVENT_PHONEME:
            continue
        time = round(min(duration, max(0.0, event.seconds - offset)), 4)
        viseme = phoneme_to_viseme(event.phoneme)
        if track[-1][0] >= time:  # zero-length shape (clamped or simultaneous): the later one wins
            track.pop()
        if not track or track[-1][1] != viseme:
            track.append((time, viseme))
    if track[-1][1] != SILENCE and track[-1][0] < duration:
        track.append((duration, SILENCE))
    return track


# ---------------------------------------------------------------- the public synthesizer

_LEAD_SECONDS = 0.010  # kept before the first sound, so the onset isn't clipped
_TAIL_SECONDS = 0.040  # kept after the last sound, for the release of the final phoneme
_SILENCE_DB = -50.0  # relative to the utterance peak: quieter than this counts as silence when trimming
_PEAK = 10 ** (-3 / 20)  # target peak at volume 100 (-3 dBFS)
_PEAK_CEILING = 10 ** (-0.5 / 20)  # louder volumes saturate here instead of clipping
_SENTENCE_PAUSE = 0.30  # s between sentences at the normal rate; eSpeak itself pauses about this long


class Synthesizer:
    """Text to speech for every NPC of the process. Cheap to make; all instances share one eSpeak engine."""

    def __init__(self) -> None:
        self._engine = _shared_engine()

    def synthesize(self, text: str, voice: VoiceSettings | None = None) -> Utterance:
        """Speak `text` in one go: trimmed, normalised 16 kHz audio with word and viseme timing."""
        return self._render(text, voice or VoiceSettings(), pause_after=0.0)

    def sentences(self, text: str, voice: VoiceSettings | None = None) -> Iterator[Utterance]:
        """Speak `text` sentence by sentence, yielding each as soon as it is ready.

        The lock is taken per sentence, so one NPC's long line does not hold up another NPC's first words.
        Every sentence but the last ends with a rate-scaled pause, so the utterances play back to back.
        """
        settings = voice or VoiceSettings()
        parts = split_sentences(text)
        pause = _SENTENCE_PAUSE * 175 / settings.rate
        for k, sentence in enumerate(parts):
            yield self._render(sentence, settings, pause_after=pause if k + 1 < len(parts) else 0.0)

    def list_voices(self) -> list[str]:
        """eSpeak language names usable as `VoiceSettings.voice` (e.g. `en-us`, `en-gb`, `de`)."""
        return list(self._engine.languages)

    def list_variants(self) -> list[str]:
        """Voice variants to append with `+` (e.g. `m3`, `f3`, `klatt`): `en-us+f3`."""
        return list(self._engine.variants)

    def _render(self, text: str, settings: VoiceSettings, pause_after: float) -> Utterance:
        if not any(ch.isalnum() for ch in text):  # eSpeak would only return a few ms of nothing
            return Utterance(text=text, audio=np.zeros(0, np.int16))
        with _ENGINE_LOCK:
            pcm, events = self._engine.synth(text, settings)
        source_rate = self._engine.sample_rate
        audio = pcm.astype(np.float32) / 32768.0
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        offset = 0.0
        if peak > 0.0:
            loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (_SILENCE_DB / 20))
            first = max(0, loud[0] - int(_LEAD_SECONDS * source_rate))
            last = min(audio.size, loud[-1] + 1 + int(_TAIL_SECONDS * source_rate))
            audio = audio[first:last]
            offset = float(first) / source_rate
        if settings.timbre:  # a formant shift, as for a Piper voice (eSpeak's variants are the other way)
            from npc_voice.speech.shape import reshape

            audio = reshape(audio, source_rate, formant_ratio=2 ** (settings.timbre / 12))
        audio = soxr.resample(audio, source_rate, SAMPLE_RATE) if audio.size else audio
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0.0:
            audio = audio * (min(_PEAK * settings.volume / 100, _PEAK_CEILING) / peak)
        pcm16 = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        duration = pcm16.size / SAMPLE_RATE
        speech_end = max(0.0, duration - _TAIL_SECONDS)
        pause = np.zeros(int(pause_after * SAMPLE_RATE), np.int16)
        return Utterance(text=text, audio=np.concatenate([pcm16, pause]),
                         words=_word_times(text, events, offset, speech_end),
                         visemes=_viseme_track(events, offset, duration))
