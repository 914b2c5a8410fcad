"""Adaptive jitter buffer between the sidecar's 200 ms replies and the loudspeaker.

Replies arrive once per chunk with some jitter (compute time varies); the device pulls small blocks
at a steady rate. The buffer starts playing ``target`` seconds after the first reply, holds 1-3
chunks, conceals an underrun with silence (counted; the last sample ramps down to zero and the
audio that follows ramps up, so a stall never clicks), and widens ``target`` after underruns that cut
into the NPC's voice (one in a silence only stretches it: nobody hears it) while
narrowing it slowly when arrivals are steady, so latency stays as low as the jitter allows. A late reply
restarts playing later, and every reply after it would keep that extra delay: so while more than a chunk
plus ``target`` is queued, silence at the head (the NPC not speaking, exact zeros) is skipped until the
delay is back to ``target``. The NPC's next answer then reaches the player as soon as a fresh start
would, and no sound it makes is ever dropped.
``flush`` drops queued NPC speech at once (an interruption), with a short fade so nothing clicks.

The same class serves the live sounddevice stream and the file-backed device of the bench, so the
bench measures what a player would hear.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE

MIN_TARGET_S = 0.02
MAX_CHUNKS = 3
FADE_SAMPLES = 80  # 5 ms


@dataclass
class PlaybackStats:
    """What the buffer went through; the client reports these."""

    underruns: int = 0
    audible_underruns: int = 0  # underruns that cut into sound (the rest only stretched a silence)
    concealed_samples: int = 0
    skipped_samples: int = 0  # silence dropped to bring the delay back to the target
    overflows: int = 0
    flushes: int = 0


class JitterBuffer:
    """Thread-safe sample queue with adaptive start-up delay and underrun concealment."""

    def __init__(self, target_s: float = 0.04, max_target_s: float = 2 * CHUNK_SAMPLES / SAMPLE_RATE) -> None:
        self._lock = threading.Lock()
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._head = 0  # samples already consumed from _queue[0]
        self.target_s = max(MIN_TARGET_S, target_s)
        self._max_target_s = max_target_s
        self._start_at: float | None = None  # device time at which playing (re)starts
        self._playing = False
        self._steady = 0
        self._last = 0  # the last sample played: an underrun ramps down from it
        self._fade_in = False  # playing resumes after an underrun: ramp the first samples up
        self._tags: deque[tuple[np.ndarray, Any]] = deque()
        self.on_start: Callable[[Any, float], None] | None = None
        self.stats = PlaybackStats()

    @property
    def queued_samples(self) -> int:
        with self._lock:
            return self._queued - self._head

    def push(self, pcm: np.ndarray, now: float, tag: Any = None) -> None:
        """A reply arrived at device time ``now``; ``on_start(tag, t)`` fires when its first sample plays."""
        pcm = pcm.astype(np.int16, copy=True)
        with self._lock:
            if tag is not None:
                self._tags.append((pcm, tag))
            if self._queued - self._head + len(pcm) > MAX_CHUNKS * CHUNK_SAMPLES:
                # More than 3 chunks waiting means the device stalled; drop the oldest audio.
                self.stats.overflows += 1
                self._drop(len(pcm), now)
            self._queue.append(pcm)
            self._queued += len(pcm)
            if not self._playing and self._start_at is None:
                self._start_at = now + self.target_s

    def _drop(self, n: int, now: float) -> None:
        while n > 0 and self._queue:
            take = min(len(self._queue[0]) - self._head, n)
            # Its start is dropped (all of it, or only its head): its events still happen now, though its
            # audio is gone; a tag left behind would never fire and would hold up every later one.
            self._report_start(now)
            self._advance(take)
            n -= take

    def _report_start(self, at: float) -> None:
        """The head chunk's first sample leaves the queue now: ``on_start`` its tag, with ``at`` as its start."""
        if self._head == 0 and self._tags and self._tags[0][0] is self._queue[0]:
            _, tag = self._tags.popleft()
            if self.on_start is not None:
                self.on_start(tag, at)

    def _advance(self, k: int) -> None:
        """``k`` samples of the head chunk are gone (played, dropped or skipped)."""
        self._head += k
        if self._head >= len(self._queue[0]):
            self._queued -= len(self._queue.popleft())
            self._head = 0

    def pull(self, n: int, now: float) -> np.ndarray:
        """The device wants ``n`` samples to play from device time ``now``."""
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            if not self._playing:
                if self._start_at is None or now + 1e-9 < self._start_at:
                    if self._fade_in:  # still starved after an underrun: this silence is concealment too
                        self.stats.concealed_samples += n
                    self._last = 0
                    return out
                self._playing = True
            self._skip_silence(self._queued - self._head - CHUNK_SAMPLES - round(self.target_s * SAMPLE_RATE), now)
            filled = 0
            while filled < n and self._queue:
                block = self._queue[0]
                self._report_start(now + filled / SAMPLE_RATE)
                take = min(n - filled, len(block) - self._head)
                out[filled : filled + take] = block[self._head : self._head + take]
                filled += take
                self._advance(take)
            if self._fade_in and filled:
                ramp = min(FADE_SAMPLES, filled)
                out[:ramp] = (out[:ramp] * np.linspace(0, 1, ramp + 1)[1:]).astype(np.int16)
                self._fade_in = False
            if filled < n:
                self._underrun(out, filled, n, now)
            else:
                self._steady += 1
                if self._steady >= 250 and self.target_s > MIN_TARGET_S:  # ~5 s of steady playback
                    self.target_s = max(MIN_TARGET_S, self.target_s - 0.005)
                    self._steady = 0
            self._last = int(out[-1])
        return out

    def _skip_silence(self, limit: int, now: float) -> None:
        """Drop up to ``limit`` samples of silence at the head of the queue (nothing from the first sound on).
        A chunk whose start is skipped is reported as starting where it would have, had it played whole."""
        while limit > 0 and self._queue:
            rest = self._queue[0][self._head : self._head + limit]
            sound = np.flatnonzero(rest)
            skip = int(sound[0]) if sound.size else len(rest)
            if skip == 0:
                return
            self._report_start(now - skip / SAMPLE_RATE)
            self._advance(skip)
            limit -= skip
            self.stats.skipped_samples += skip
            if sound.size:
                return

    def _underrun(self, out: np.ndarray, filled: int, n: int, now: float) -> None:
        # Ramp from the last sample played down to zero: the audio often ends on a block boundary
        # (filled == 0), so fading the samples already out is not enough to avoid a click.
        last = int(out[filled - 1]) if filled else self._last
        ramp = min(FADE_SAMPLES, n - filled)
        out[filled : filled + ramp] = (last * np.linspace(1, 0, ramp + 1)[1:]).astype(np.int16)
        self._fade_in = True
        self.stats.underruns += 1
        self.stats.concealed_samples += n - filled
        if last or out[:filled].any():  # it broke into the NPC's voice: hold more from now on
            self.stats.audible_underruns += 1
            self.target_s = min(self._max_target_s, self.target_s + 0.02)
            self._steady = 0
        self._playing = False
        self._start_at = None  # restart target_s after the next arrival

    def flush(self) -> None:
        """Drop queued audio now (the NPC was interrupted); a short fade avoids a click."""
        with self._lock:
            if self._queue and self._playing:
                block = self._queue[0]
                fade = min(FADE_SAMPLES, len(block) - self._head)
                seg = block[self._head : self._head + fade].astype(np.float32) * np.linspace(1, 0, fade)
                self._queue.clear()
                self._tags.clear()
                self._queue.append(seg.astype(np.int16))
                self._queued = fade
                self._head = 0
            else:
                self._queue.clear()
                self._tags.clear()
                self._queued = 0
                self._head = 0
            self.stats.flushes += 1
