"""The jitter buffer: when playing starts, how underruns are concealed, how interruption clears it."""

from __future__ import annotations

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.audio.playback import JitterBuffer

BLOCK = 160


def tone(value: int = 1000) -> np.ndarray:
    return np.full(CHUNK_SAMPLES, value, np.int16)


def play(buf: JitterBuffer, t0: float, seconds: float) -> np.ndarray:
    n = int(round(seconds * 16000 / BLOCK))
    return np.concatenate([buf.pull(BLOCK, t0 + i * BLOCK / 16000) for i in range(n)])


def test_plays_after_the_target_delay_and_reports_when_each_chunk_starts() -> None:
    buf = JitterBuffer(target_s=0.04)
    starts: dict[int, float] = {}
    buf.on_start = lambda tag, t: starts.__setitem__(tag, t)
    buf.push(tone(), now=1.0, tag=0)
    out = play(buf, 1.0, 0.1)
    assert not out[: int(0.04 * 16000)].any() and out[int(0.04 * 16000):].all()
    assert abs(starts[0] - 1.04) < 1e-6


def test_steady_arrivals_play_without_gaps() -> None:
    buf = JitterBuffer(target_s=0.04)
    out = []
    for k in range(10):
        buf.push(tone(k + 1), now=0.2 * k + 0.01, tag=k)
        out.append(play(buf, 0.2 * k + 0.01, 0.2))
    audio = np.concatenate(out)
    first = np.flatnonzero(audio)[0]
    assert audio[first:first + 9 * CHUNK_SAMPLES].all()
    assert buf.stats.underruns == 0


def test_a_late_chunk_is_concealed_with_silence_counted_and_the_target_grows() -> None:
    buf = JitterBuffer(target_s=0.02)
    buf.push(tone(), now=0.0)
    play(buf, 0.0, 0.24)  # drains the first chunk, then runs dry
    assert buf.stats.underruns == 1 and buf.stats.concealed_samples > 0
    assert buf.target_s > 0.02


def test_flush_stops_speech_at_once_with_a_short_fade() -> None:
    buf = JitterBuffer(target_s=0.02)
    buf.push(tone(8000), now=0.0)
    play(buf, 0.0, 0.06)
    buf.flush()
    out = play(buf, 0.06, 0.1)
    assert np.abs(out[:80]).max() <= 8000 and not out[80:].any()
    assert buf.stats.flushes == 1


def test_never_holds_more_than_three_chunks() -> None:
    buf = JitterBuffer()
    for _ in range(6):
        buf.push(tone(), now=0.0)
    assert buf.queued_samples <= 3 * CHUNK_SAMPLES and buf.stats.overflows > 0


def test_every_chunk_start_is_reported_once_even_when_an_overflow_cuts_into_a_chunk() -> None:
    buf = JitterBuffer(target_s=0.02)
    starts: list[int] = []
    buf.on_start = lambda tag, t: starts.append(tag)
    buf.push(tone(), now=0.0, tag=0)
    play(buf, 0.0, 0.1)  # half of chunk 0 played
    for k in (1, 2, 3, 4):  # a burst: the overflow drops the rest of 0 and the head of 1
        buf.push(tone(), now=0.1, tag=k)
    play(buf, 0.1, 1.0)
    assert buf.stats.overflows > 0
    assert starts == [0, 1, 2, 3, 4]  # the events of chunk 1 still happen, and nothing after it waits forever
