"""A sound card without hardware: typed speech as the microphone, a wall-clock thread as the speaker.

The demo game must run on machines with no microphone (or no sound card at all) and still exercise
the whole duplex path, interruptions included. ``TypedMic`` holds the player's synthesised lines and
hands them out sample by sample, silence in between, so a line typed while the NPC talks overlaps its
speech exactly as a spoken one would. ``ClockedDuplexDevice`` runs the loudspeaker side on the wall
clock in 20 ms blocks (pulling the NPC's audio from the jitter buffers, as a real callback would) and
delivers 200 ms ``CapturedChunk`` s on time, through the same ``ChunkAssembler`` as the live stream.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.live import ChunkAssembler, PullFn

BLOCK = 320  # 20 ms
MAX_LAG_S = 0.5  # a thread starved for longer than this resynchronises instead of racing to catch up

class TypedMic:
    """The player's voice from synthesised lines, queued back to back; silence when there is none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: deque[np.ndarray] = deque()
        self._head = 0

    def say(self, pcm: np.ndarray) -> None:
        """Queue a line (int16, 16 kHz); it starts right after anything still being said."""
        with self._lock:
            self._lines.append(np.asarray(pcm, dtype=np.int16))

    @property
    def speaking(self) -> bool:
        with self._lock:
            return bool(self._lines)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples of the player's voice (zeros past the last queued line)."""
        out = np.zeros(n, np.int16)
        filled = 0
        with self._lock:
            while filled < n and self._lines:
                line = self._lines[0]
                take = min(n - filled, len(line) - self._head)
                out[filled : filled + take] = line[self._head : self._head + take]
                filled += take
                self._head += take
                if self._head >= len(line):
                    self._lines.popleft()
                    self._head = 0
        return out


class ClockedDuplexDevice:
    """A duplex "device" paced by the wall clock: a silent microphone, a loudspeaker that plays nowhere.

    Times are ``time.monotonic()`` seconds, like every time on the game side.
    """

    def __init__(self, pull: PullFn, block: int = BLOCK) -> None:
        self._pull = pull
        self._block = block
        self._assembler = ChunkAssembler()
        self.chunks = self._assembler.chunks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="npc-voice-clocked-device", daemon=True)
        self.resyncs = 0

    @property
    def time(self) -> float:
        return time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        step = self._block / SAMPLE_RATE
        silent = np.zeros(self._block, np.int16)
        t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - t > MAX_LAG_S:
                self.resyncs += 1
                t = now
            while t <= now:
                _, played = self._pull(self._block, t)
                t += step
                self._assembler.feed(silent, played, t)
            self._stop.wait(max(0.0, t - time.monotonic()))
