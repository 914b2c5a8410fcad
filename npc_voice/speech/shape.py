"""Speaker-level changes to rendered speech: pitch, melody range and formants (timbre), keeping the timing.

Two NPCs that share one neural voice must not sound like one person. Piper's own knobs only change
pace and expressiveness, so the rest is done on the audio with Praat's "Change gender" (PSOLA
resynthesis, through praat-parselmouth): the formants are scaled (a bigger or smaller vocal tract), the
pitch contour is moved to a new median and stretched or flattened around it, and the duration is
left as it is, so word and viseme timing measured before still holds.
"""

from __future__ import annotations

import numpy as np
import parselmouth
from parselmouth.praat import call

PITCH_FLOOR_HZ = 60.0  # below the lowest voice we shift (Joe at -5 semitones is about 70 Hz)
PITCH_CEILING_HZ = 400.0  # above the highest (a surprised herbalist shifted up)


def is_identity(pitch_ratio: float, range_factor: float, formant_ratio: float) -> bool:
    """True when a change would leave the audio as it is (then it is skipped: it costs ~50 ms a sentence)."""
    return abs(pitch_ratio - 1) < 1e-3 and abs(range_factor - 1) < 1e-3 and abs(formant_ratio - 1) < 1e-3


def median_pitch(audio: np.ndarray, rate: int) -> float:
    """Median F0 of the voiced frames in Hz (0.0 if nothing is voiced)."""
    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=rate)
    pitch = sound.to_pitch(0.01, PITCH_FLOOR_HZ, PITCH_CEILING_HZ)
    value = call(pitch, "Get quantile", 0, 0, 0.5, "Hertz")
    return 0.0 if not np.isfinite(value) else float(value)


def reshape(audio: np.ndarray, rate: int, *, pitch_ratio: float = 1.0, range_factor: float = 1.0,
            formant_ratio: float = 1.0) -> np.ndarray:
    """``audio`` (float, mono) with its median pitch times ``pitch_ratio``, its pitch movements around the
    median times ``range_factor`` (0 is monotone) and its formants times ``formant_ratio``; same length."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size < rate // 20 or is_identity(pitch_ratio, range_factor, formant_ratio):
        return audio.astype(np.float32)
    sound = parselmouth.Sound(audio, sampling_frequency=rate)
    median = 0.0
    if abs(pitch_ratio - 1) >= 1e-3:
        median = median_pitch(audio, rate) * pitch_ratio  # 0: unvoiced, Praat then keeps the pitch
    out = call(sound, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, formant_ratio, median,
               max(0.0, range_factor), 1.0)
    shaped = np.asarray(out.values[0], dtype=np.float32)
    if shaped.size != audio.size:  # Praat keeps the length at duration factor 1; guard the timing anyway
        shaped = np.pad(shaped, (0, max(0, audio.size - shaped.size)))[: audio.size]
    return shaped
