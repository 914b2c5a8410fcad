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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.live import LiveDuplexDevice, NoAudioDevice, PullFn, StreamSettings, sounddevice
from npc_voice.audio.playback import JitterBuffer
from npc_voice.audio.virtual import ClockedDuplexDevice


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


class LiveStereoDevice(LiveDuplexDevice):
    """The sound card for the game: stereo loudspeaker (the mix), and the microphone unless ``with_mic`` is
    False (type-to-speak). One PortAudio stream on one clock, so the echo reference is exactly what played
    while each microphone block was captured (``npc_voice.audio.live.LiveDuplexDevice``)."""

    def __init__(
        self,
        pull: PullFn,
        device: int | str | None = None,
        with_mic: bool = True,
        settings: StreamSettings = StreamSettings(),  # noqa: B008 - frozen
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(pull, device, out_channels=2, with_mic=with_mic, settings=settings, on_lost=on_lost)


AudioDevice = LiveStereoDevice | ClockedDuplexDevice


def open_audio(
    pull: PullFn,
    mode: str = "auto",
    device: int | str | None = None,
    on_lost: Callable[[str], None] | None = None,
) -> tuple[AudioDevice, bool, str]:
    """The best device there is: ``(device, has_microphone, plain-words status)``.

    ``mode``: ``"auto"`` (microphone if any), ``"typed"`` (speaker only, type to speak), ``"silent"``
    (no sound card: the wall-clock device; tests and headless screenshots). ``on_lost`` is called (from a
    watchdog thread) if a live device stops working later.
    """
    if mode == "silent":
        return ClockedDuplexDevice(pull), False, "no sound output (silent mode): type to speak"
    try:
        sd = sounddevice()
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
            live = LiveStereoDevice(pull, device, on_lost=on_lost)
            return live, True, f"microphone: {live.input_name}; speaker: {live.output_name}"
        except Exception as exc:  # noqa: BLE001 - PortAudioError or ValueError: no usable input
            reason = f"no microphone ({exc})"
    else:
        reason = "type-to-speak mode"
    try:
        sd.check_output_settings(device=device, channels=2, samplerate=SAMPLE_RATE, dtype="int16")
        live = LiveStereoDevice(pull, device, with_mic=False, on_lost=on_lost)
        return live, False, f"{reason}: type to speak; speaker: {live.output_name}"
    except Exception as exc:  # noqa: BLE001
        return ClockedDuplexDevice(pull), False, f"{reason}; no speaker either ({exc}): type to speak, voices silent"
