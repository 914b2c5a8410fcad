"""The live sound card: microphone and loudspeaker through sounddevice (PortAudio).

One full-duplex stream runs both directions on the same device clock, so the audio played during
a capture interval is exactly known: it goes to the sidecar as the echo reference. The callback
never blocks: captured blocks are gathered into 200 ms chunks and handed over through a queue;
playback pulls from the jitter buffer.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.audio.playback import JitterBuffer


class NoAudioDevice(RuntimeError):
    """No usable microphone/loudspeaker: PortAudio is missing or no device exists."""


@dataclass
class CapturedChunk:
    """200 ms of microphone, the audio played meanwhile, and the stream time it ended."""

    pcm: np.ndarray
    played: np.ndarray
    t_end: float
    level_dbfs: float


def _sounddevice():  # noqa: ANN202 - module object
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library not found
        raise NoAudioDevice("PortAudio is not installed (Debian: apt-get install libportaudio2)") from exc
    return sounddevice


def list_devices() -> str:
    """Human-readable device list, or why there is none."""
    try:
        return str(_sounddevice().query_devices())
    except NoAudioDevice as exc:
        return str(exc)


def check_duplex(device: int | str | None = None) -> None:
    """Raise ``NoAudioDevice`` with a plain reason unless a 16 kHz mono duplex stream can open."""
    sd = _sounddevice()
    try:
        sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="int16")
        sd.check_output_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="int16")
    except Exception as exc:  # sounddevice raises PortAudioError or ValueError
        raise NoAudioDevice(f"no usable microphone and speaker ({exc})") from exc


class LiveDuplexDevice:
    """Microphone in, loudspeaker out, one PortAudio stream; ``chunks`` yields 200 ms captures."""

    def __init__(self, buffer: JitterBuffer, device: int | str | None = None, block: int = 320) -> None:
        check_duplex(device)
        sd = _sounddevice()
        self.buffer = buffer
        self.chunks: queue.Queue[CapturedChunk] = queue.Queue(maxsize=16)
        self._mic = np.zeros(CHUNK_SAMPLES, np.int16)
        self._played = np.zeros(CHUNK_SAMPLES, np.int16)
        self._fill = 0
        self.overruns = 0
        self._stream = sd.Stream(
            samplerate=SAMPLE_RATE,
            blocksize=block,
            channels=1,
            dtype="int16",
            device=device,
            callback=self._callback,
            latency="low",
        )

    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info, status) -> None:  # noqa: ANN001
        now = time_info.outputBufferDacTime
        out = self.buffer.pull(frames, now)
        outdata[:, 0] = out
        mic = indata[:, 0]
        i = 0
        while i < frames:
            take = min(frames - i, CHUNK_SAMPLES - self._fill)
            self._mic[self._fill : self._fill + take] = mic[i : i + take]
            self._played[self._fill : self._fill + take] = out[i : i + take]
            self._fill += take
            i += take
            if self._fill == CHUNK_SAMPLES:
                rms = float(np.sqrt(np.mean(self._mic.astype(np.float32) ** 2)) + 1e-9)
                chunk = CapturedChunk(
                    pcm=self._mic.copy(),
                    played=self._played.copy(),
                    t_end=now,
                    level_dbfs=20 * np.log10(rms / 32768.0),
                )
                try:
                    self.chunks.put_nowait(chunk)
                except queue.Full:
                    self.overruns += 1
                self._fill = 0

    @property
    def time(self) -> float:
        return float(self._stream.time)

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()
