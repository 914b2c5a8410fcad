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


def test_after_a_late_reply_silence_is_skipped_until_speech_is_as_prompt_as_at_the_start() -> None:
    buf = JitterBuffer(target_s=0.04)
    starts: dict[int, float] = {}
    buf.on_start = lambda tag, t: starts.__setitem__(tag, t)
    arrivals = {k: 0.2 * k + 0.01 for k in range(12)}
    arrivals[3] += 0.15  # one slow step: playing stalls and restarts later
    pcm = {k: tone() if k < 6 else np.zeros(CHUNK_SAMPLES, np.int16) for k in range(12)}  # the NPC speaks...
    pcm[10] = tone(3000)  # ...falls silent, then answers the player
    t = 0.0
    for k in range(12):
        t_next = arrivals[k]
        if t_next > t:
            play(buf, t, t_next - t)
            t = t_next
        buf.push(pcm[k], now=arrivals[k], tag=k)
    assert buf.stats.underruns == 1
    assert starts[5] - arrivals[5] > 0.15  # after the stall, the rest of its line plays late...
    assert starts[10] - arrivals[10] < 0.1  # ...but by the answer the silence in between has taken it back
    assert buf.stats.skipped_samples > 0


def test_skipping_silence_never_drops_a_sound() -> None:
    buf = JitterBuffer(target_s=0.02)
    rng = np.random.default_rng(0)
    sent, heard = [], []
    t = 0.0
    for k in range(30):
        chunk = np.zeros(CHUNK_SAMPLES, np.int16)
        if k % 3 == 2:  # speech with silence before, after and inside it
            chunk[800:2400] = rng.integers(1, 1000, 1600)
            chunk[1500:1600] = 0
        sent.append(chunk)
        arrive = 0.2 * k + (0.16 if k == 4 else 0.01)  # a stall in silence
        heard.append(play(buf, t, arrive - t))
        t = arrive
        buf.push(chunk, now=arrive, tag=k)
    heard.append(play(buf, t, 1.0))
    sent_audio, heard_audio = np.concatenate(sent), np.concatenate(heard)
    assert buf.stats.skipped_samples > 0
    assert np.array_equal(heard_audio[heard_audio != 0], sent_audio[sent_audio != 0])
    first_sound = np.flatnonzero(heard_audio)
    gaps = np.diff(first_sound)
    assert (gaps[gaps > 1] - 1 == 100).sum() == 10  # the silence inside each word is kept, every time


def test_running_dry_in_a_silence_is_counted_but_does_not_widen_the_delay() -> None:
    buf = JitterBuffer(target_s=0.02)
    buf.push(np.zeros(CHUNK_SAMPLES, np.int16), now=0.0)
    play(buf, 0.0, 0.24)  # the NPC was silent when the next reply came late: nobody heard a gap
    assert buf.stats.underruns == 1 and buf.stats.audible_underruns == 0
    assert buf.target_s == 0.02
