"""Audio routing for the game: one jitter buffer per NPC, a stereo mix placed by where each NPC stands.

Every NPC's replies go into its own ``JitterBuffer`` (so an interruption flushes only that NPC); the
``Mixer`` pulls them all on the device clock, applies each NPC's distance gain and equal-power pan,
and returns the stereo block for the loudspeaker plus the mono sum that reaches the microphone (the
echo reference). ``open_audio`` picks the best device that exists: microphone + speaker, speaker only
(type-to-speak), or no sound card at all (a wall-clock device), and says plainly which and why.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.live import NoAudioDevice
from npc_voice.audio.playback import JitterBuffer
from npc_voice.audio.virtual import BLOCK, ChunkAssembler, ClockedDuplexDevice, PullFn


@dataclass
class Channel:
    """One NPC's voice on the mix: its buffer, where it sits, how loud it is right now."""

    buffer: JitterBuffer = field(default_factory=JitterBuffer)
    gain: float = 1.0
    pan: float = 0.0  # -1 left .. +1 right
    level: float = 0.0  # RMS of the last block this NPC played, 0..1 (lip-sync fallback)


def spatialise(
    listener: tuple[float, float], source: tuple[float, float], radius: float
) -> tuple[float, float]:
    """Gain and pan of a voice at ``source`` heard from ``listener`` (world units; silent past ``radius``)."""
    dx, dy = source[0] - listener[0], source[1] - listener[1]
    dist = math.hypot(dx, dy)
    near = radius * 0.25
    gain = 1.0 if dist <= near else max(0.0, 1.0 - (dist - near) / (radius - near)) ** 1.5
    pan = max(-1.0, min(1.0, dx / (radius * 0.5))) * 0.8
    return gain, pan


class Mixer:
    """Sums the NPC channels; thread-safe (the device thread pulls, the game and I/O threads adjust)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}

    def add(self, npc_id: str) -> Channel:
        with self._lock:
            ch = self._channels[npc_id] = Channel()
            return ch

    def remove(self, npc_id: str) -> None:
        with self._lock:
            self._channels.pop(npc_id, None)

    def pull(self, n: int, now: float) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples from ``now``: stereo int16 (n, 2) for the speaker and the mono echo reference."""
        left = np.zeros(n, np.float32)
        right = np.zeros(n, np.float32)
        mono = np.zeros(n, np.float32)
        with self._lock:
            channels = list(self._channels.values())
        for ch in channels:
            pcm = ch.buffer.pull(n, now).astype(np.float32)
            ch.level = float(np.sqrt(np.mean(pcm**2))) / 32768.0
            if ch.gain <= 0.0:
                continue
            angle = (ch.pan + 1.0) * math.pi / 4.0
            left += pcm * (ch.gain * math.cos(angle) * math.sqrt(2.0))
            right += pcm * (ch.gain * math.sin(angle) * math.sqrt(2.0))
            mono += pcm * ch.gain
        stereo = np.clip(np.stack([left, right], axis=1), -32768, 32767).astype(np.int16)
        return stereo, np.clip(mono, -32768, 32767).astype(np.int16)


def _sounddevice():  # noqa: ANN202 - module object
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library is missing
        raise NoAudioDevice("PortAudio is not installed (Debian: apt-get install libportaudio2)") from exc
    return sounddevice


class LiveStereoDevice:
    """The sound card: stereo loudspeaker, and the microphone unless ``with_mic`` is False.

    One PortAudio stream on one clock, so the echo reference is exactly what played while each
    microphone block was captured. Times handed to the mixer are ``time.monotonic()`` seconds at which
    the block reaches the DAC. Without a microphone the captured side is silence (type-to-speak).
    """

    def __init__(self, pull: PullFn, device: int | str | None = None, with_mic: bool = True) -> None:
        sd = _sounddevice()
        self._pull = pull
        self._assembler = ChunkAssembler()
        self.chunks = self._assembler.chunks
        self.with_mic = with_mic
        kwargs = dict(samplerate=SAMPLE_RATE, blocksize=BLOCK, dtype="int16", device=device, latency="low")
        if with_mic:
            self._stream = sd.Stream(channels=(1, 2), callback=self._duplex, **kwargs)
        else:
            self._stream = sd.OutputStream(channels=2, callback=self._output, **kwargs)

    def _play(self, outdata: np.ndarray, frames: int, time_info) -> np.ndarray:  # noqa: ANN001
        dac = time.monotonic() + max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
        stereo, mono = self._pull(frames, dac)
        outdata[:] = stereo
        return mono

    def _duplex(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info, status) -> None:  # noqa: ANN001
        played = self._play(outdata, frames, time_info)
        self._assembler.feed(indata[:, 0], played, time.monotonic())

    def _output(self, outdata: np.ndarray, frames: int, time_info, status) -> None:  # noqa: ANN001
        played = self._play(outdata, frames, time_info)
        self._assembler.feed(np.zeros(frames, np.int16), played, time.monotonic())

    @property
    def time(self) -> float:
        return time.monotonic()

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()


AudioDevice = LiveStereoDevice | ClockedDuplexDevice


def open_audio(
    pull: PullFn, mode: str = "auto", device: int | str | None = None
) -> tuple[AudioDevice, bool, str]:
    """The best device there is: ``(device, has_microphone, plain-words status)``.

    ``mode``: ``"auto"`` (microphone if any), ``"typed"`` (speaker only, type to speak), ``"silent"``
    (no sound card: the wall-clock device; tests and headless screenshots).
    """
    if mode == "silent":
        return ClockedDuplexDevice(pull), False, "no sound output (silent mode): type to speak"
    try:
        sd = _sounddevice()
    except NoAudioDevice as exc:
        return ClockedDuplexDevice(pull), False, f"no audio: {exc}; type to speak, NPC voices are silent"
    try:
        found = len(sd.query_devices())
    except Exception:  # noqa: BLE001 - PortAudio failing to enumerate devices means there are none to use
        found = 0
    if not found:
        return ClockedDuplexDevice(pull), False, "no sound card found: type to speak (Enter); voices are silent"
    if mode == "auto":
        try:
            sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="int16")
            sd.check_output_settings(device=device, channels=2, samplerate=SAMPLE_RATE, dtype="int16")
            name = sd.query_devices(device, "input")["name"]
            return LiveStereoDevice(pull, device), True, f"microphone: {name}"
        except Exception as exc:  # noqa: BLE001 - PortAudioError or ValueError: no usable input
            reason = f"no microphone ({exc})"
    else:
        reason = "type-to-speak mode"
    try:
        sd.check_output_settings(device=device, channels=2, samplerate=SAMPLE_RATE, dtype="int16")
        return LiveStereoDevice(pull, device, with_mic=False), False, f"{reason}: type to speak"
    except Exception as exc:  # noqa: BLE001
        return ClockedDuplexDevice(pull), False, f"{reason}; no speaker either ({exc}): type to speak, voices silent"
