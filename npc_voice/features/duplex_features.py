"""Per-chunk input of the duplex model: both audio streams, the echo canceller's view, words, NPC state.

One ``DuplexFeatures`` per session turns each 200 ms step into one vector (``N_FEATURES`` floats).
Training runs the very same class over synthetic dialogues that went through the run-time echo
canceller and VAD, so the model learns from exactly what it sees live.

What goes in, and why:
- the cleaned microphone, 20 frames of 40 ms every 10 ms (``prosody.frame_descriptors``) summarised
  per 40 ms sub-frame: level, voicing, periodicity, spectral flux; the chunk's mean MFCC 1-12 (what
  kind of sound: speech, breath, hiss, echo residue); the pitch slope of the last voiced frames and
  the last pitch against the player's running median (falling intonation ends turns);
- the raw microphone level and the loudspeaker reference (what the NPC played) level per sub-frame,
  so the model compares the two streams itself instead of trusting a gate;
- silero VAD probabilities (mean, max, first, last frame) and the echo canceller's ``EchoStats``;
- timing from a simple VAD tracker: in speech, length of the stretch, of the silence, of the turn;
- the NPC: speaking, seconds into its line;
- words of the fast partial transcript: how many, whether new ones arrived, and lexical flags
  (ends where sentences seldom end, interruption cue, backchannel words only, opens with "no").
"""

from __future__ import annotations

import math

import numpy as np

from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_float
from npc_voice.features.prosody import (
    F_DB,
    F_FLUX,
    F_MFCC,
    F_PER,
    F_ST,
    F_VOICED,
    FRAME,
    HOP,
    N_MFCC,
    frame_descriptors,
)
from npc_voice.features.words import INTERRUPT_CUES, looks_incomplete, words_of

SUBFRAMES = 5  # 40 ms each
BACKCHANNEL_WORDS = frozenset(
    ["uh", "huh", "uh-huh", "mm", "mhm", "hmm", "yeah", "yes", "yep", "right", "ok", "okay", "i", "see",
     "wow", "oh", "sure", "really", "nice", "got", "it", "ah", "aha", "cool", "alright", "indeed", "true"]
)
VAD_ON, VAD_OFF = 0.5, 0.3
TURN_RESET_S = 3.0  # this much silence ends whatever the player was saying

FEATURE_GROUPS: tuple[tuple[str, int], ...] = (
    ("mic_db", SUBFRAMES), ("mic_voiced", SUBFRAMES), ("mic_periodicity", SUBFRAMES), ("mic_flux", SUBFRAMES),
    ("mic_mfcc", N_MFCC), ("pitch", 3), ("raw_db", SUBFRAMES), ("ref_db", SUBFRAMES), ("vad", 4), ("echo", 5),
    ("timing", 4), ("npc", 3), ("text", 6),
)
N_FEATURES = sum(n for _, n in FEATURE_GROUPS)


def _sub_db(x: np.ndarray | None) -> np.ndarray:
    """Level (dBFS) of each 40 ms sub-frame of a float chunk; -90 for no audio."""
    if x is None:
        return np.full(SUBFRAMES, -90.0, np.float32)
    p = np.mean(x.reshape(SUBFRAMES, -1) ** 2, axis=1)
    return np.maximum(10.0 * np.log10(p + 1e-10), -90.0).astype(np.float32)


def text_flags(partial: str, previous: str) -> np.ndarray:
    """Lexical evidence from the (often misheard) fast transcript; cheap, and robust to word errors."""
    words = words_of(partial)
    new = len(words) > len(words_of(previous)) or (bool(words) and partial != previous)
    return np.array(
        [
            math.log1p(len(words)),
            float(new),
            float(looks_incomplete(partial)),
            float(any(w in INTERRUPT_CUES for w in words[:3])),
            float(bool(words) and all(w in BACKCHANNEL_WORDS for w in words)),
            float(bool(words) and words[0] == "no"),
        ],
        np.float32,
    )


class DuplexFeatures:
    """One session's feature extractor; state is a few hundred floats."""

    def __init__(self) -> None:
        self._tail = np.zeros(FRAME - HOP, np.float32)
        self._prev_shape: np.ndarray | None = None
        self._pitch_median = 0.0  # running median-ish of the player's pitch (semitones re 100 Hz)
        self._last_st = np.zeros(0, np.float32)  # recent voiced pitch values, for the slope
        self._since_voiced = 10.0
        self._in_speech = False
        self._stretch_s = 0.0
        self._silence_s = 10.0
        self._turn_s = 0.0
        self._was_npc = False
        self._partial = ""

    def step(
        self,
        raw: np.ndarray,
        clean: np.ndarray,
        played: np.ndarray | None,
        vad: np.ndarray,
        echo: EchoStats,
        npc_speaking: bool,
        line_elapsed_s: float,
        partial: str,
    ) -> np.ndarray:
        """The feature vector (``N_FEATURES`` float32) of one chunk."""
        x = to_float(clean)
        buf = np.concatenate([self._tail, x])
        self._tail = buf[-(FRAME - HOP):].copy()
        frames = np.lib.stride_tricks.sliding_window_view(buf, FRAME)[::HOP][: CHUNK_SAMPLES // HOP]
        desc, self._prev_shape = frame_descriptors(frames, self._prev_shape)
        sub = desc.reshape(SUBFRAMES, -1, desc.shape[1])
        mic_db = np.maximum(sub[:, :, F_DB].mean(axis=1), -90.0)
        loud = desc[:, F_DB] > max(float(desc[:, F_DB].max()) - 30.0, -60.0)
        mfcc = desc[loud, F_MFCC:].mean(axis=0) if loud.any() else np.zeros(N_MFCC, np.float32)
        pitch = self._pitch(desc)

        vad = np.asarray(vad, np.float32)
        vad_f = np.array([vad.mean(), vad.max(), vad[0], vad[-1]] if vad.size else [0.0] * 4, np.float32)
        self._track(vad, npc_speaking)
        echo_f = np.array(
            [
                float(echo.ref_active),
                np.clip(echo.residual_excess_db / 10.0, -2.0, 4.0),
                np.clip(echo.erle_db / 20.0, 0.0, 3.0),
                np.clip((echo.mic_db - echo.out_db) / 20.0, -1.0, 3.0),
                np.clip((echo.echo_db + 50.0) / 20.0, -2.5, 2.5),
            ],
            np.float32,
        )
        timing = np.array(
            [float(self._in_speech), math.log1p(self._stretch_s), math.log1p(min(self._silence_s, 10.0)),
             math.log1p(self._turn_s)],
            np.float32,
        )
        npc = np.array([float(npc_speaking), math.log1p(line_elapsed_s), min(line_elapsed_s, 5.0) / 5.0], np.float32)
        text = text_flags(partial, self._partial)
        self._partial = partial
        return np.concatenate(
            [
                (mic_db + 50.0) / 20.0, sub[:, :, F_VOICED].mean(axis=1), sub[:, :, F_PER].mean(axis=1),
                sub[:, :, F_FLUX].mean(axis=1), mfcc, pitch,
                (_sub_db(to_float(raw)) + 50.0) / 20.0,
                (_sub_db(None if played is None else to_float(played)) + 50.0) / 20.0,
                vad_f, echo_f, timing, npc, text,
            ]
        ).astype(np.float32)

    def _pitch(self, desc: np.ndarray) -> np.ndarray:
        """Slope (st/s) of the last voiced frames, last pitch against the running median, time since voiced."""
        voiced = desc[:, F_VOICED] > 0.5
        st = desc[voiced, F_ST]
        if st.size:
            self._since_voiced = (desc.shape[0] - 1 - int(np.flatnonzero(voiced)[-1])) * HOP / SAMPLE_RATE
            if self._pitch_median == 0.0:
                self._pitch_median = float(np.median(st))
            self._pitch_median += 0.05 * float(np.clip(np.median(st) - self._pitch_median, -6, 6))
            self._last_st = np.concatenate([self._last_st, st])[-15:]
        else:
            self._since_voiced = min(self._since_voiced + desc.shape[0] * HOP / SAMPLE_RATE, 10.0)
        slope, rel = 0.0, 0.0
        if self._last_st.size >= 4 and self._since_voiced < 1.0:
            t = np.arange(self._last_st.size) * HOP / SAMPLE_RATE
            slope = float(np.clip(np.polyfit(t, self._last_st, 1)[0], -60.0, 60.0)) / 30.0
            rel = float(np.clip(self._last_st[-1] - self._pitch_median, -12.0, 12.0)) / 6.0
        if self._since_voiced >= 1.0:
            self._last_st = self._last_st[:0]
        return np.array([slope, rel, math.log1p(self._since_voiced)], np.float32)

    def _track(self, vad: np.ndarray, npc_speaking: bool) -> None:
        """Stretch, silence and turn lengths from VAD frames (the model's own, ungated view)."""
        frame_s = CHUNK_SAMPLES / SAMPLE_RATE / max(vad.size, 1)
        if npc_speaking and not self._was_npc:
            self._turn_s = 0.0
        self._was_npc = npc_speaking
        for p in vad:
            if self._in_speech and p < VAD_OFF:
                self._in_speech = False
                self._silence_s = 0.0
            elif not self._in_speech and p >= VAD_ON:
                self._in_speech = True
                self._stretch_s = 0.0
            if self._in_speech:
                self._stretch_s += frame_s
                self._turn_s += frame_s
            else:
                self._silence_s += frame_s
        if self._silence_s > TURN_RESET_S:
            self._turn_s = 0.0
