"""The live device's echo reference (``PlayedHistory``): what the loudspeaker played while each microphone block
was captured, lined up by counting samples, moved only by an xrun or a sustained departure of the stream times.

The loudspeaker plays a ramp (each sample its own value), so a reference block says exactly which played
samples it holds. Stream times are made as PulseAudio's are (measured on the virtual card): right on average,
a few ms off for seconds, single blocks off by up to 18 ms.
"""

from __future__ import annotations

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.live import PlayedHistory, StreamSettings

BLOCK = 320


def ramp(start: int, n: int) -> np.ndarray:
    return ((start + np.arange(n)) % 30000).astype(np.int16)


class Loop:
    """Both streams of one sample clock, with stream times that wander (``jitter``) and an output that can
    lose samples (``underrun``): the played timeline then falls behind by that much."""

    def __init__(self, seed: int = 0) -> None:
        self.history = PlayedHistory(StreamSettings(block=BLOCK))
        self.rng = np.random.default_rng(seed)
        self.written = 0  # loudspeaker samples written
        self.late = 0  # loudspeaker samples the output lost to underruns: played that much later
        self.captured = 0
        self.bias = 0.0  # the stream times' slow error (s)
        for _ in range(3):  # the output is written ahead of what plays
            self.write()

    def write(self, glitch: bool = False) -> None:
        # Sample s sounds at (s + late) / SAMPLE_RATE: the block's stream time says so, give or take.
        t = (self.written + self.late) / SAMPLE_RATE
        self.history.append(ramp(self.written, BLOCK), t + self.bias + self.rng.normal(0, 0.0005), glitch)
        self.written += BLOCK

    def step(self, glitch_out: bool = False, spike: float = 0.0) -> np.ndarray:
        """One 20 ms block each way; returns the reference for the microphone block."""
        self.bias = float(np.clip(self.bias + self.rng.normal(0, 0.0003), -0.004, 0.004))
        self.write(glitch_out)
        t = self.captured / SAMPLE_RATE  # the microphone's sample j is captured at j / SAMPLE_RATE
        ref = self.history.captured(BLOCK, t - self.bias + self.rng.normal(0, 0.0005) + spike)
        self.captured += BLOCK
        return ref

    def error(self, ref: np.ndarray) -> int:
        """How many samples later than what really played over the last microphone block ``ref`` is."""
        truth = self.captured - BLOCK - self.late
        return int(ref[0]) - truth % 30000


def test_jittery_stream_times_leave_the_reference_sample_exact() -> None:
    loop = Loop()
    for _ in range(50):
        loop.step()
    offset, error = loop.history.offset, loop.error(loop.step())
    assert abs(error) <= 32  # the stream times' own error: 2 ms at most, left to the echo canceller
    for i in range(500):  # 10 s of stream times wandering by up to 4 ms and single blocks off by 18 ms
        ref = loop.step(spike=0.018 if i % 37 == 5 else 0.0)
        assert np.array_equal(ref, ramp(int(ref[0]), BLOCK)) and loop.error(ref) == error  # whole, and steady
    assert loop.history.offset == offset and loop.history.moves == 0


def test_an_underrun_moves_the_reference_with_the_played_audio() -> None:
    loop = Loop(1)
    for _ in range(50):
        loop.step()
    loop.late += 1330  # the output starved 83 ms: everything written from now on plays that much later
    for i in range(20):  # the stream says so; the new offset settles over 0.2 s of its times
        loop.step(glitch_out=i == 0)
    errors = {loop.error(loop.step()) for _ in range(100)}
    assert len(errors) == 1 and abs(errors.pop()) <= 80  # steady again, within the stream times' 5 ms
    assert loop.history.moves == 1


def test_an_unreported_underrun_moves_the_reference_once_it_lasts() -> None:
    loop = Loop(2)
    for _ in range(50):
        loop.step()
    before = loop.history.offset
    loop.late += 800  # 50 ms, and the stream says nothing
    for _ in range(30):
        loop.step()
    assert loop.history.moves == 1 and loop.history.offset is not None and before is not None
    assert abs(before - loop.history.offset - 800) <= 80


def test_nothing_played_yet_is_silence() -> None:
    history = PlayedHistory()
    assert not history.captured(BLOCK, 1.0).any()
