"""The NPC voices measured (``npc-voice bench voice``): what a player hears, and what it costs.

- **intelligibility**: Whisper tiny.en (the engine's own accurate pass) reads back every sentence the
  three personas can say ahead, rendered in both engines (each persona's Piper settings and its eSpeak NG
  voice); word error rate per engine, numbers written as words on both sides.
- **two men, one model**: the blacksmith and the guard (both Joe's Piper voice) saying the same sentences:
  median pitch, pitch spread, the shift of the spectral envelope (timbre) and speaking rate.
- **emotion**: one Piper persona and one eSpeak persona saying the same sentences in each voice level:
  median pitch, pitch range (10th-90th percentile, semitones), words per second, loudness.
- **cache hit**: ``Voices.synthesize`` of sentences rendered ahead, timed one by one.

Run under the shared lock for figures you report: ``flock /work/bench.lock npc-voice bench voice --json out``.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import parselmouth

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.bench.asr_wer import edit_distance
from npc_voice.data import builtin_persona_dir
from npc_voice.model.emotion import VOICE_LEVELS
from npc_voice.persona.loader import DEFAULT_PIPER_MODEL, Persona, load_persona
from npc_voice.speech.ahead import RenderAhead, resting_level, spoken_texts
from npc_voice.speech.cache import LineCache
from npc_voice.speech.tts import VoiceSettings
from npc_voice.speech.voices import Voices

PERSONAS = builtin_persona_dir()
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + _number(rest))
    return str(n)


def words_for_wer(text: str) -> list[str]:
    """Lower-case words, numbers spelt out (Whisper writes "40 gold" for "forty gold"), no punctuation."""
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    text = re.sub(r"\d+", lambda m: " " + _number(int(m.group())) + " ", text)
    return [w.strip("'") for w in re.sub(r"[^a-z' ]+", " ", text).split() if w.strip("'")]


def pitch_stats(audio: np.ndarray) -> dict[str, float]:
    """Median F0 (Hz), spread (semitone SD) and range (10th-90th percentile, semitones) of the voiced frames."""
    snd = parselmouth.Sound(audio.astype(np.float64) / 32768.0, sampling_frequency=SAMPLE_RATE)
    f0 = snd.to_pitch(0.01, 60, 400).selected_array["frequency"]
    f0 = f0[f0 > 0]
    if f0.size < 5:
        return {"median_hz": float("nan"), "sd_st": float("nan"), "range_st": float("nan")}
    st = 12 * np.log2(f0 / np.median(f0))
    lo, hi = np.percentile(st, [10, 90])
    return {"median_hz": float(np.median(f0)), "sd_st": float(np.std(st)), "range_st": float(hi - lo)}


def envelope(audio: np.ndarray, n: int = 512, lifter: int = 24) -> np.ndarray:
    """Long-term average spectrum (dB) of the frames within 30 dB of the loudest, cepstrally smoothed so the
    harmonics of the pitch are gone and the formant envelope (the timbre) is left."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64) / 32768.0, n)[:: n // 2]
    energy = (frames**2).mean(axis=1)
    frames = frames[energy > energy.max() * 1e-3] * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0) + 1e-12
    cep = np.fft.irfft(np.log(power))
    cep[lifter:-lifter] = 0.0
    return np.fft.rfft(cep).real[: n // 2 + 1] * 10 / np.log(10)


def timbre_shift_st(a: np.ndarray, b: np.ndarray, n: int = 512) -> float:
    """How far (semitones) ``b``'s spectral envelope sits above ``a``'s over 200-4000 Hz: the log-frequency
    shift that best lines the two envelopes up (a formant shift of r semitones measures as r)."""
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    band = (freqs > 200) & (freqs < 4000)
    octaves, ea, eb = np.log2(freqs[band]), envelope(a, n)[band], envelope(b, n)[band]
    grid = np.linspace(octaves[0] + 0.5, octaves[-1] - 0.5, 400)
    shifts = np.arange(-6.0, 6.01, 0.25)
    fit = [np.corrcoef(np.interp(grid, octaves, ea), np.interp(grid + st / 12, octaves, eb))[0, 1] for st in shifts]
    return float(shifts[int(np.argmax(fit))])


def loudness_db(audio: np.ndarray) -> float:
    """RMS level (dBFS) of the frames within 30 dB of the loudest: the voice, not the pauses."""
    frame = SAMPLE_RATE // 50
    n = audio.size // frame
    x = audio[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    db = 10 * np.log10(np.mean(x**2, axis=1) + 1e-12)
    return float(10 * np.log10(np.mean(10 ** (db[db > db.max() - 30] / 10))))


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.nanmean([r[k] for r in rows])), 3) for k in rows[0]}


def espeak_twin(persona: Persona) -> VoiceSettings:
    """The persona's voice in eSpeak NG (its fallback voice with the same speaker settings)."""
    return persona.voice.settings().as_espeak()


def piper_twin(persona: Persona) -> VoiceSettings:
    """The persona's voice in Piper (an eSpeak persona gets the packaged voice with its speaker settings)."""
    model = persona.voice.model or DEFAULT_PIPER_MODEL
    return dataclasses.replace(persona.voice.settings(), engine="piper", model=model)


def intelligibility(voices: Voices, personas: list[Persona], limit: int | None) -> dict[str, Any]:
    """Whisper tiny.en's word error rate on every sentence known ahead, per engine."""
    from npc_voice.features.asr import AsrModels

    asr = AsrModels()
    out: dict[str, Any] = {}
    for engine, twin in (("piper", piper_twin), ("espeak-ng", espeak_twin)):
        errors = words = 0
        worst: list[tuple[float, str, str]] = []
        for persona in personas:
            settings = twin(persona)
            for text in spoken_texts(persona)[:limit]:
                ref = words_for_wer(text)
                if not ref:
                    continue
                heard = asr.transcribe(voices.render(text, settings).audio)
                e = edit_distance(ref, words_for_wer(heard))
                errors, words = errors + e, words + len(ref)
                worst.append((e / len(ref), text, heard))
        worst.sort(reverse=True)
        out[engine] = {"wer": round(errors / max(1, words), 4), "words": words, "sentences": len(worst),
                       "worst": [{"said": t, "heard": h, "wer": round(w, 2)} for w, t, h in worst[:8]]}
    asr.close()
    return out


def speakers(voices: Voices, a: Persona, b: Persona, texts: list[str]) -> dict[str, Any]:
    """Two personas saying the same sentences in their resting voices: pitch, timbre, pace."""
    out: dict[str, Any] = {}
    audio: dict[str, np.ndarray] = {}
    for persona in (a, b):
        settings = persona.voice.settings(VOICE_LEVELS[resting_level(persona)])
        rows, total_s, total_w, pieces = [], 0.0, 0, []
        for text in texts:
            utt = voices.render(text, settings)
            rows.append(pitch_stats(utt.audio))
            pieces.append(utt.audio)
            total_s += utt.duration
            total_w += len(words_for_wer(text))
        audio[persona.id] = np.concatenate(pieces)
        out[persona.id] = {**_mean(rows), "words_per_s": round(total_w / total_s, 3),
                           "engine": settings.engine, "settings": dataclasses.asdict(settings)}
    pa, pb = out[a.id], out[b.id]
    out["difference"] = {
        "median_pitch_st": round(12 * np.log2(pb["median_hz"] / pa["median_hz"]), 2),
        "pitch_sd_st": round(pb["sd_st"] - pa["sd_st"], 2),
        "timbre_st": timbre_shift_st(audio[a.id], audio[b.id]),
        "words_per_s_ratio": round(pb["words_per_s"] / pa["words_per_s"], 3),
    }
    return out


def emotions(voices: Voices, persona: Persona, texts: list[str]) -> dict[str, Any]:
    """One persona saying the same sentences in every voice level."""
    out: dict[str, Any] = {}
    for level, shift in VOICE_LEVELS.items():
        settings = persona.voice.settings(shift)
        rows, total_s, total_w = [], 0.0, 0
        for text in texts:
            utt = voices.render(text, settings)
            stats = pitch_stats(utt.audio)
            rows.append({"median_hz": stats["median_hz"], "range_st": stats["range_st"],
                         "loudness_db": loudness_db(utt.audio)})
            total_s += utt.duration
            total_w += len(words_for_wer(text))
        out[level] = {**_mean(rows), "words_per_s": round(total_w / total_s, 3)}
    return out


def cache_hits(personas: list[Persona], folder: Path, repeats: int = 3) -> dict[str, Any]:
    """Time ``Voices.synthesize`` of sentences rendered ahead (the resting voice of each persona)."""
    voices = Voices(LineCache(folder))
    ahead = RenderAhead(voices)
    timings: list[float] = []
    jobs = []
    for persona in personas:
        settings = persona.voice.settings(VOICE_LEVELS[resting_level(persona)])
        for text in spoken_texts(persona):
            voices.cache.put(voices.key(text, settings), voices.render(text, settings))
            jobs.append((text, settings))
    for _ in range(repeats):
        for text, settings in jobs:
            t = time.perf_counter()
            utt = voices.synthesize(text, settings)
            timings.append(time.perf_counter() - t)
            assert utt.audio.size > 0
    ahead.close()
    ms = np.array(timings) * 1000
    live = []
    for text, settings in jobs[:: max(1, len(jobs) // 20)]:
        t = time.perf_counter()
        voices.render(text, settings)
        live.append(time.perf_counter() - t)
    return {"hits": len(timings), "median_ms": round(float(np.median(ms)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4), "max_ms": round(float(ms.max()), 4),
            "synthesis_median_ms": round(float(np.median(live)) * 1000, 1)}


def run_voice_bench(wer: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Every figure above, as a dict."""
    personas = [load_persona(PERSONAS / f"{n}.yaml") for n in ("blacksmith", "guard", "herbalist")]
    smith, guard, herbalist = personas
    with tempfile.TemporaryDirectory() as tmp:
        voices = Voices(LineCache(Path(tmp) / "unused"))
        report: dict[str, Any] = {"cache_hit": cache_hits(personas, Path(tmp) / "hits")}
        sample = spoken_texts(guard)[:10] + spoken_texts(smith)[:10]
        report["speakers"] = speakers(voices, smith, guard, sample)
        report["emotion"] = {p.id: emotions(voices, p, sample[:12]) for p in (smith, herbalist)}
        if wer:
            report["intelligibility"] = intelligibility(voices, personas, limit)
    return report
