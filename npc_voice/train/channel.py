"""Other microphones, rooms, phone lines and levels for training audio: one ``Channel`` per simulated session.

Why: the tone model learnt from one studio (RAVDESS) reads the microphone as emotion. A bright synthetic voice
or a loud headset looked like a raised, tense voice (high spectral centroid, little low-band energy, a high
level: the cues of anger); a phone line's missing top band looked like another speaker altogether. Training
every speaker through several random channels teaches the model which cues survive a change of microphone.

A ``Channel`` is fixed for a whole session (all of a speaker's utterances in it share it, as a player's share
their headset and room). ``apply`` renders, in this order: speed (pitch and formants move together, a cheap
stand-in for another voice), a room (exponentially decaying noise as the impulse response), a microphone (a
spectral tilt and one or two resonances), a phone line (8 kHz, 300-3400 Hz, mu-law), noise at a signal-to-noise
ratio, and a level (the speech's RMS in dBFS, soft-clipped when it is driven hot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from npc_voice.audio.format import SAMPLE_RATE, to_float, to_int16


@dataclass(frozen=True)
class Channel:
    speed: float = 1.0
    rt60_s: float = 0.0  # room reverberation time; 0 = none
    drr_db: float = 10.0  # direct-to-reverberant energy ratio
    tilt: float = 0.0  # first-order tilt, -0.7 (dull) .. 0.7 (bright)
    peaks: tuple[tuple[float, float], ...] = ()  # microphone resonances: (centre Hz, gain dB)
    phone: bool = False
    snr_db: float | None = None  # None: no added noise
    level_dbfs: float | None = None  # None: keep the recording's level

    @property
    def clean(self) -> bool:
        return self == Channel()


CLEAN = Channel()


def random_channel(rng: np.random.Generator) -> Channel:
    """A plausible player set-up: headset, laptop, phone or room microphone, quiet to loud."""
    return Channel(
        speed=float(rng.uniform(0.94, 1.06)),
        rt60_s=float(rng.uniform(0.15, 0.8)) if rng.random() < 0.4 else 0.0,
        drr_db=float(rng.uniform(-2.0, 12.0)),
        tilt=float(rng.uniform(-0.7, 0.7)),
        peaks=tuple((float(rng.uniform(300, 6000)), float(rng.uniform(-8, 8)))
                    for _ in range(int(rng.integers(0, 3)))),
        phone=bool(rng.random() < 0.25),
        snr_db=float(rng.uniform(8.0, 40.0)) if rng.random() < 0.8 else None,
        level_dbfs=float(rng.uniform(-42.0, -10.0)),
    )


def _room(x: np.ndarray, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections arrive after the direct sound
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail ** 2) + 1e-12)
    tail[0] = 1.0
    return fftconvolve(x, tail)[: x.size + n // 2]


def _peak(x: np.ndarray, f0: float, gain_db: float, q: float = 1.2) -> np.ndarray:
    """RBJ peaking equaliser."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return lfilter(b, den, x)


def _phone(x: np.ndarray) -> np.ndarray:
    y = soxr.resample(x, SAMPLE_RATE, 8000)
    y = sosfilt(butter(4, [300, 3400], btype="band", fs=8000, output="sos"), y)
    peak = np.max(np.abs(y)) + 1e-9
    mu = 255.0
    c = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
    c = np.round(c * 127) / 127  # 8-bit companded samples (G.711-like)
    y = np.sign(c) * (np.expm1(np.abs(c) * np.log1p(mu)) / mu) * peak
    return soxr.resample(y, 8000, SAMPLE_RATE)[: x.size]


def active_rms(x: np.ndarray) -> float:
    """RMS of the sounding part (10 ms frames within 30 dB of the loudest), so pauses do not lower it."""
    hop = 160
    n = max(1, x.size // hop)
    p = np.mean(x[: n * hop].reshape(n, -1) ** 2, axis=1) if x.size >= hop else np.array([np.mean(x ** 2)])
    loud = p[p > p.max() * 1e-3]
    return float(np.sqrt(np.mean(loud) + 1e-12))


def apply(pcm: np.ndarray, ch: Channel, seed: int, lead_s: float = 0.0) -> np.ndarray:
    """``pcm`` (int16) as heard through ``ch``; ``lead_s`` of the channel's noise is put before it."""
    rng = np.random.default_rng(seed)
    x = to_float(pcm).astype(np.float64)
    if lead_s:
        x = np.concatenate([np.zeros(int(lead_s * SAMPLE_RATE)), x])
    if ch.speed != 1.0:
        x = soxr.resample(x, SAMPLE_RATE * ch.speed, SAMPLE_RATE)
    if ch.rt60_s > 0:
        x = _room(x, ch.rt60_s, ch.drr_db, rng)
    if ch.tilt:
        x = lfilter([1.0, ch.tilt], [1.0], x) / (1.0 + abs(ch.tilt))
    for f0, g in ch.peaks:
        x = _peak(x, f0, g)
    if ch.phone:
        x = _phone(x)
    speech = active_rms(x)
    if ch.snr_db is not None:
        noise = lfilter([1.0], [1.0, -float(rng.uniform(0.5, 0.95))], rng.standard_normal(x.size))
        x = x + noise / (noise.std() + 1e-12) * speech * 10 ** (-ch.snr_db / 20)
    if ch.level_dbfs is not None:
        x = x * 10 ** (ch.level_dbfs / 20) / speech
        x = np.tanh(x * 1.2) / 1.2 if np.max(np.abs(x)) > 0.8 else x  # a hot input clips softly
    return to_int16(x)
