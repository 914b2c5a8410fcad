"""An NPC line as 200 ms chunks: a first sentence synthesised ahead, sentences after it, an interjection
("Let me finish!") that takes the broken sentence up again, and a sentence that fails to synthesise."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from npc_voice.speech.stream import LineStream, Synthesized
from npc_voice.speech.tts import Synthesizer, VoiceSettings

VOICE = VoiceSettings(voice="en-us+m3")
LINE = "The toll is two silver coins. Pay it at the gate. Keep your weapons sheathed inside the walls."


@pytest.fixture(scope="module")
def synth():
    tts = Synthesizer()

    def run(text: str) -> Synthesized:
        utt = tts.synthesize(text, VOICE)
        return utt.audio, utt.words, utt.visemes

    return run


@pytest.fixture()
def pool():
    with ThreadPoolExecutor(1) as executor:
        yield executor


def play(line: LineStream, limit: int = 500) -> tuple[np.ndarray, list[str]]:
    """Pull chunks at 10 ms intervals (faster than real time, slow enough for synthesis ahead)."""
    pcm, words = [], []
    for _ in range(limit):
        time.sleep(0.01)
        chunk = line.next_chunk()
        pcm.append(chunk.pcm)
        words += [w for _, w in chunk.words]
        if chunk.finished:
            break
    assert line.finished, "the line ended"
    return np.concatenate(pcm), words


def spoken(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


def test_every_word_once_in_order_with_the_first_sentence_made_ahead(synth, pool) -> None:
    first = pool.submit(synth, "The toll is two silver coins.")
    line = LineStream("l1", LINE, synth, pool, first=first)
    audio, words = play(line)
    assert [w.strip(".,!?").lower() for w in words] == spoken(LINE)
    assert np.abs(audio).max() > 1000


def test_an_interjection_is_said_and_the_broken_sentence_taken_up_again(synth, pool) -> None:
    line = LineStream("l2", LINE, synth, pool)
    first_len = len(synth("The toll is two silver coins.")[0])
    said = []
    for _ in range(500):
        if line._pos >= first_len + 3200 * 2:  # into the second sentence
            break
        time.sleep(0.01)
        said += [w for _, w in line.next_chunk().words]
    line.interject(synth("Let me finish!"))
    rest_audio, rest = play(line)
    words = [w.strip(".,!?").lower() for w in said + rest]
    assert words[:6] == spoken("The toll is two silver coins.")
    after = words[6:]
    # the interjection, then the second sentence from its start (its first words are heard twice), then the rest
    assert after[after.index("let"):][:3] == ["let", "me", "finish"]
    resumed = after[after.index("finish") + 1 :]
    assert resumed == spoken("Pay it at the gate. Keep your weapons sheathed inside the walls.")
    assert line.finished


def test_a_sentence_that_fails_is_skipped_not_fatal(synth, pool) -> None:
    def flaky(text: str) -> Synthesized:
        if text.startswith("Pay"):
            raise RuntimeError("voice engine failed")
        return synth(text)

    line = LineStream("l3", LINE, flaky, pool)
    _, words = play(line)
    assert [w.strip(".,!?").lower() for w in words] == spoken(
        "The toll is two silver coins. Keep your weapons sheathed inside the walls.")


def test_what_is_unsaid_starts_at_the_sentence_it_was_cut_in(synth, pool) -> None:
    line = LineStream("l4", LINE, synth, pool)
    assert line.unsaid() == LINE
    first_len = len(synth("The toll is two silver coins.")[0])
    for _ in range(500):
        if line._pos >= first_len + 3200:
            break
        time.sleep(0.01)
        line.next_chunk()
    assert line.unsaid() == "Pay it at the gate. Keep your weapons sheathed inside the walls."
    play(line)
    assert line.unsaid() == ""


def test_a_lead_in_delays_the_first_sound_and_its_words_within_the_chunk(synth, pool) -> None:
    plain = LineStream("l5", "Welcome to my forge.", synth, pool)
    late = LineStream("l6", "Welcome to my forge.", synth, pool, lead_in=0.07)
    a, b = plain.next_chunk(), late.next_chunk()
    lead = int(0.07 * 16000)
    assert not b.pcm[:lead].any()  # silence first, then the same voice that much later
    onset = [int(np.flatnonzero(np.abs(c.pcm) > 500)[0]) for c in (a, b)]
    assert abs(onset[1] - onset[0] - lead) <= 16
    (t_plain, w), (t_late, w2) = a.words[0], b.words[0]
    assert w == w2 and abs(t_late - t_plain - 0.07) < 1e-3
    _, rest = play(late)
    assert [w for _, w in b.words] + rest == [w for _, w in a.words] + play(plain)[1]
