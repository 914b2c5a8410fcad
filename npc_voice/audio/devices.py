"""Audio devices: a file-backed full-duplex "sound card" that behaves like the real one.

``FileDuplexDevice`` plays the player's side of a conversation from a recording: its microphone
captures the recording plus, if asked, the NPC's own voice leaking back from the loudspeaker
(delayed and scaled, as in a room); its loudspeaker plays whatever the jitter buffer hands it, in
10 ms blocks on the device clock. It records both, sample-aligned with the input recording, so
``npc.wav`` is what the player heard and ``mic.wav`` what the sidecar was sent.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_int16
from npc_voice.audio.playback import JitterBuffer

BLOCK = 160  # 10 ms device block


def read_wav(path: Path | str) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as int16; anything else is a clear error."""
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != SAMPLE_RATE:
            raise ValueError(
                f"{path}: need 16-bit mono PCM at {SAMPLE_RATE} Hz, got {w.getsampwidth() * 8}-bit "
                f"{w.getnchannels()} ch at {w.getframerate()} Hz"
            )
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def write_wav(path: Path | str, audio: np.ndarray) -> None:
    """Write int16 mono audio at 16 kHz."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())


class FileDuplexDevice:
    """Microphone from a recording (plus simulated echo), loudspeaker into a recording."""

    def __init__(
        self, user: np.ndarray, buffer: JitterBuffer, echo_delay_ms: float = 0.0, echo_gain: float = 0.0
    ) -> None:
        n_chunks = -(-len(user) // CHUNK_SAMPLES)
        self.length = len(user)
        self.user = np.zeros(n_chunks * CHUNK_SAMPLES, np.int16)
        self.user[: len(user)] = user
        self.out = np.zeros(len(self.user), np.int16)
        self.mic = np.zeros(len(self.user), np.int16)
        self.buffer = buffer
        self.echo_delay = int(round(echo_delay_ms * SAMPLE_RATE / 1000))
        self.echo_gain = echo_gain
        self.pos = 0  # samples played so far (device clock)

    @property
    def n_chunks(self) -> int:
        return len(self.user) // CHUNK_SAMPLES

    @property
    def now(self) -> float:
        return self.pos / SAMPLE_RATE

    def play_block(self) -> None:
        """Play one 10 ms block from the jitter buffer."""
        if self.pos >= len(self.out):
            return
        n = min(BLOCK, len(self.out) - self.pos)
        self.out[self.pos : self.pos + n] = self.buffer.pull(n, self.now)
        self.pos += n

    def capture(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Microphone chunk ``k`` and what the loudspeaker played meanwhile; needs the device past it."""
        a, b = k * CHUNK_SAMPLES, (k + 1) * CHUNK_SAMPLES
        if self.pos < b:
            raise RuntimeError(f"chunk {k} is not captured yet (device at {self.pos}, need {b})")
        mic = self.user[a:b].astype(np.float32)
        if self.echo_gain > 0:
            src = np.arange(a, b) - self.echo_delay
            ok = src >= 0
            echo = np.zeros(CHUNK_SAMPLES, np.float32)
            echo[ok] = self.out[src[ok]]
            mic = mic + self.echo_gain * echo
        pcm = to_int16(mic / 32768.0)
        self.mic[a:b] = pcm
        return pcm, self.out[a:b].copy()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / "npc.wav", self.out[: self.length])
        write_wav(folder / "mic.wav", self.mic[: self.length])
